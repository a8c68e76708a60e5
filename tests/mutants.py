"""The programs that the EvalPlus agreement test judges on both sides: every shipped MBPP+
canonical solution and up to three seeded AST mutants of each (tests/test_evalplus_agreement.py;
tests/data/make_evalplus_verdicts.py records EvalPlus's verdicts on the same programs)."""

from __future__ import annotations

import ast
import hashlib
import json
import random
import warnings

from pot.tasks.mbppplus import SHIPPED_FILE

MUTANTS_PER_TASK = 3
# References taking 0.3-6 s per plus input: no mutants for these, to keep the test short.
SLOW_REFERENCES = {"Mbpp/583", "Mbpp/589", "Mbpp/592", "Mbpp/599", "Mbpp/603"}
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


def shipped_records() -> list[dict]:
    return [json.loads(line) for line in SHIPPED_FILE.read_text().splitlines()]


def agreement_samples() -> list[dict]:
    """[{"task_id", "kind" (canonical or mutant), "solution"}] in the shipped file's order,
    each task's canonical solution first."""
    samples = []
    for record in shipped_records():
        reference = record["prompt"] + record["canonical_solution"]
        number = int(record["task_id"].split("/")[1])
        programs = [reference]
        if record["task_id"] not in SLOW_REFERENCES:
            programs += mutants(reference, MUTANTS_PER_TASK, seed=number)
        for index, program in enumerate(programs):
            kind = "canonical" if index == 0 else "mutant"
            samples.append({"task_id": record["task_id"], "kind": kind, "solution": program})
    return samples


def digest(samples: list[dict]) -> str:
    """What a recording of verdicts on `samples` must have been made for."""
    programs = [[s["task_id"], s["kind"], s["solution"]] for s in samples]
    return hashlib.sha256(json.dumps(programs).encode()).hexdigest()


def dataset_digest() -> str:
    return hashlib.sha256(SHIPPED_FILE.read_bytes()).hexdigest()
