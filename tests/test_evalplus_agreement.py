"""Our MBPP+ verdicts agree with EvalPlus's own evaluator (evalplus 0.3.1, `evalplus.evaluate`)
on base and plus, for every canonical solution of the shipped tasks and for mutants of them.

EvalPlus runs in a subprocess on the shipped file (MBPP_OVERRIDE_PATH, nothing downloaded),
with PYTHONHASHSEED=0 as our sandbox workers have, so both sides see the same set and dict
orders, and with its minimum per-input time limit set to our per-test limit (4 s). Its expected
outputs and its verdicts on these exact samples are cached under $POT_CACHE/evalplus, so a
rerun costs only our side (EvalPlus's verdicts are a function of the samples, the data and
its version, all in the cache key).

Known disagreements, each named where it is excluded:
- Mbpp/630: one plus input's expected output is a 3^10-element list (1.3 MB encoded), over the
  sandbox's output limit, so our loader leaves the task out (EvalPlus grades it).
- Mbpp/599: the reference sums range(10**8) on three plus inputs, 2-6 s each on this machine;
  our per-test limit is 4 s, EvalPlus's is 4x the reference's own time, so a correct program
  passes there and may time out here depending on load. Its verdicts are not compared.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pytest

from pot.methods.common import group_scores
from pot.tasks.mbppplus import SHIPPED_FILE, load_mbppplus

pytest.importorskip("evalplus")

MUTANTS_PER_TASK = 3
# References taking 0.3-6 s per plus input: no mutants for these, to keep the test short.
SLOW_REFERENCES = {"Mbpp/583", "Mbpp/589", "Mbpp/592", "Mbpp/599", "Mbpp/603"}
NOT_COMPARED = {"Mbpp/599": "time-limit dependent (see the module docstring)"}
OPERATORS = ("off-by-one", "return-type", "swap-branches", "float-rounding", "tuple-list")


class Mutator(ast.NodeTransformer):
    """Applies `operator` at its `target`-th site; counts the sites in `sites`."""

    def __init__(self, operator: str, target: int) -> None:
        self.operator, self.target, self.sites = operator, target, 0

    def hit(self, operator: str) -> bool:
        if self.operator != operator:
            return False
        self.sites += 1
        return self.sites - 1 == self.target

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if type(node.value) is int and self.hit("off-by-one"):
            return ast.Constant(node.value + 1)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        flips = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
        if type(node.ops[0]) in flips and self.hit("off-by-one"):
            node.ops = [flips[type(node.ops[0])](), *node.ops[1:]]
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if node.value is None:
            return node
        if self.hit("return-type"):
            node.value = ast.Call(ast.Name("str"), [node.value], [])
        elif self.hit("float-rounding"):
            node.value = ast.Call(ast.Name("round"), [node.value, ast.Constant(2)], [])
        elif isinstance(node.value, (ast.Tuple, ast.List)) and self.hit("tuple-list"):
            kind = ast.List if isinstance(node.value, ast.Tuple) else ast.Tuple
            node.value = kind(node.value.elts, ast.Load())
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        other = {"tuple": "list", "list": "tuple"}
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name in other and self.hit("tuple-list"):
            node.func = ast.Name(other[name])
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Div) and self.hit("float-rounding"):
            node.op = ast.FloorDiv()
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        if self.hit("swap-branches"):
            if node.orelse:
                node.body, node.orelse = node.orelse, node.body
            else:
                node.test = ast.UnaryOp(ast.Not(), node.test)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        if self.hit("swap-branches"):
            node.body, node.orelse = node.orelse, node.body
        return node


def mutate(source: str, operator: str, target: int) -> tuple[str, int]:
    mutator = Mutator(operator, target)
    with warnings.catch_warnings():  # invalid escapes in some references' regexes
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.fix_missing_locations(mutator.visit(ast.parse(source)))
    return ast.unparse(tree), mutator.sites


def mutants(source: str, count: int, seed: int) -> list[str]:
    """Up to `count` distinct mutants of `source`, the operators taken in turn."""
    original = mutate(source, "none", -1)[0]
    rng = random.Random(seed)
    sites = {operator: list(range(mutate(source, operator, -1)[1])) for operator in OPERATORS}
    for targets in sites.values():
        rng.shuffle(targets)
    chosen: list[str] = []
    while len(chosen) < count and any(sites.values()):
        for operator in OPERATORS:
            if sites[operator] and len(chosen) < count:
                program = mutate(source, operator, sites[operator].pop())[0]
                if program != original and program not in chosen:
                    chosen.append(program)
    return chosen


def evalplus_verdicts(samples: list[dict], folder: Path) -> list[tuple[bool, bool]]:
    """(base, plus) per sample from `evalplus.evaluate`, in the samples' order."""
    text = "".join(json.dumps(sample) + "\n" for sample in samples)
    cache = Path(os.environ.get("POT_CACHE", "~/.cache/pot")).expanduser() / "evalplus"
    command = ["-m", "evalplus.evaluate", "--dataset", "mbpp", "--min_time_limit", "4"]
    key = [text, SHIPPED_FILE.read_text(), metadata.version("evalplus"), *command]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    cached = cache / f"verdicts-{digest}.json"
    if not cached.is_file():
        path = folder / "samples.jsonl"
        path.write_text(text)
        environment = os.environ | {
            "MBPP_OVERRIDE_PATH": str(SHIPPED_FILE),
            "PYTHONHASHSEED": "0",
            "XDG_CACHE_HOME": str(cache),
        }
        command += ["--samples", str(path), "--parallel", str(os.cpu_count() or 1)]
        run = subprocess.run(
            [sys.executable, *command], env=environment, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-3000:]
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_text((folder / "samples_eval_results.json").read_text())
    results = json.loads(cached.read_text())["eval"]
    seen: dict[str, int] = {}
    verdicts = []
    for sample in samples:
        index = seen.get(sample["task_id"], 0)
        seen[sample["task_id"]] = index + 1
        result = results[sample["task_id"]][index]
        base = result["base_status"] == "pass"
        verdicts.append((base, base and result["plus_status"] == "pass"))
    return verdicts


@pytest.fixture(scope="module")
def verdicts(sandbox, tmp_path_factory):
    """[(task id, kind, ours, theirs)] for every canonical solution and mutant."""
    tasks = {task.metadata["evalplus_task_id"]: task for task in load_mbppplus()}
    records = [json.loads(line) for line in SHIPPED_FILE.read_text().splitlines()]
    samples, kinds = [], []
    for record in records:
        reference = record["prompt"] + record["canonical_solution"]
        number = int(record["task_id"].split("/")[1])
        programs = [reference]
        if record["task_id"] not in SLOW_REFERENCES:
            programs += mutants(reference, MUTANTS_PER_TASK, seed=number)
        for index, program in enumerate(programs):
            samples.append({"task_id": record["task_id"], "solution": program})
            kinds.append("canonical" if index == 0 else "mutant")
    theirs = evalplus_verdicts(samples, tmp_path_factory.mktemp("evalplus"))

    def ours(sample: dict) -> tuple[bool, bool] | None:
        task = tasks.get(sample["task_id"])
        if task is None or sample["task_id"] in NOT_COMPARED:
            return None
        scores = group_scores(task, sandbox.evaluate_task(task, sample["solution"], "hidden"))
        return scores["base"], scores["plus"]

    with ThreadPoolExecutor(sandbox.workers) as threads:
        our_verdicts = list(threads.map(ours, samples))
    return [
        (sample["task_id"], kind, mine, other, sample["solution"])
        for sample, kind, mine, other in zip(samples, kinds, our_verdicts, theirs, strict=True)
        if mine is not None
    ]


def disagreements(verdicts: list, kind: str) -> list:
    return [
        (task_id, ours, theirs, program)
        for task_id, what, ours, theirs, program in verdicts
        if what == kind and ours != theirs
    ]


def test_every_canonical_solution_gets_evalplus_verdicts(verdicts):
    canonical = [v for v in verdicts if v[1] == "canonical"]
    assert len(canonical) == 158  # 160 shipped, less Mbpp/630 (left out) and /599 (timing)
    assert disagreements(verdicts, "canonical") == []
    assert all(theirs == (True, True) for _, _, _, theirs, _ in canonical)


def test_mutants_get_evalplus_verdicts(verdicts):
    mutated = [v for v in verdicts if v[1] == "mutant"]
    assert len(mutated) >= 300
    assert disagreements(verdicts, "mutant") == []
    # the mutants exercise every outcome: fail base, pass base only, pass both
    outcomes = {theirs for _, _, _, theirs, _ in mutated}
    assert outcomes == {(False, False), (True, False), (True, True)}
