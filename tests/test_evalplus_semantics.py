"""Our reproduction of EvalPlus's MBPP+ rules checked against evalplus 0.3.1 itself: the input
conversion (`mbpp_deserialize_inputs`) and the output comparison (`untrusted_check`, run in a
subprocess because it disables os functions in the process it forks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pot.sandbox import values
from pot.sandbox.oracles import outputs_match
from pot.tasks import Test
from pot.tasks.mbppplus import CONVERSIONS, ORACLES, SHIPPED_FILE, carried_atols

evalplus_mbpp = pytest.importorskip("evalplus.data.mbpp")

# Inputs that EvalPlus's conversion accepts for each converted task (shape per task).
NESTED = [[[1, 2], [3, 4]], [[5, 6]], [[7], [8, 9]]]
SYNTHETIC = {
    115: [[[1, 2], [], [3]]],
    124: ["1.5", "(1+2j)"],
    252: ["(3-4j)"],
    278: [[1, [2, 3], 4]],
    307: [[1, 2], 3, 4],
    722: [{"a": [1, 2], "b": [3]}, 5, 6],
    106: [[1], [2, 3]],
    750: [[1], [2, 3]],
}


def signature(value: object) -> object:
    """`value` with every type spelled out, so (1,) and [1] or 1 and 1.0 differ."""
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(map(repr, value)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [signature(item) for item in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(k), signature(v)) for k, v in value.items()))
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize("number", sorted(CONVERSIONS))
def test_conversion_matches_evalplus_for_every_converted_task(number):
    arguments = SYNTHETIC.get(number, NESTED)
    theirs = evalplus_mbpp.mbpp_deserialize_inputs(f"Mbpp/{number}", [arguments])
    ours = CONVERSIONS[number](arguments)
    assert signature(list(ours)) == signature(list(theirs[0]))


def test_conversion_matches_evalplus_on_every_shipped_input():
    for line in SHIPPED_FILE.read_text().splitlines():
        record = json.loads(line)
        number = int(record["task_id"].split("/")[1])
        convert = CONVERSIONS.get(number, list)
        for field in ("base_input", "plus_input"):
            theirs = evalplus_mbpp.mbpp_deserialize_inputs(record["task_id"], record[field])
            ours = [convert(arguments) for arguments in record[field]]
            assert [signature(list(a)) for a in ours] == [signature(list(a)) for a in theirs]


# (entry point, task atol, [(arguments, expected, actual)]) graded as one group. EvalPlus runs
# a program returning the `actual` values in turn, on the arguments, against the expected.
CASES = [
    ("f", 0, [([1], 3, 3)]),
    ("f", 0, [([1], [1, 2], (1, 2))]),  # tuple vs list
    ("f", 0, [([1], (1, 2), (1, 2))]),
    ("f", 0, [([1], 1.0, 1.0 + 1e-7)]),  # float within 1e-6
    ("f", 0, [([1], 1.0, 1.001)]),
    ("f", 0, [([1], 2.0, 2)]),  # int equal to a float: == passes
    ("f", 0, [([1], 2.5, 2)]),  # int for a float: allclose needs the same type
    ("f", 0, [([1], [1.0, 2.0], [1.0, 2.0000001])]),
    ("f", 0, [([1], [1.0, 2.0], (1.0, 2.0000001))]),
    ("f", 0, [([1], [1.0, 2.0], [1.0])]),
    ("f", 0, [([1], [[1.0], [2.0]], [[1.0], [2.0000001]])]),  # nested: no float tolerance
    ("f", 1e-4, [([1], [[1.0], [2.0]], [[1.0], [2.00001]])]),  # task atol: allclose nested
    ("f", 1e-4, [([1], 3, 3.00001)]),
    ("f", 0, [([1], (1 + 2j), (1 + 2j + 1e-9))]),
    ("f", 1e-4, [([1], (1 + 2j), (1 + 2j + 1e-9))]),
    ("f", 0, [([1], [], [])]),
    ("f", 0, [([1], {1, 2}, [1, 2])]),
    ("f", 0, [([1], True, 1)]),
    ("f", 0, [([1], None, None)]),
    ("f", 0, [([1], {"a": 1}, {"a": 1})]),
    ("f", 0, [([1], "ab", "ab ")]),
    # EvalPlus keeps atol 1e-6 after a float output, and rtol 1e-7 then admits an off-by-one
    # on a large integer later in the group; without a float before it, it does not.
    ("f", 0, [([1], 1.5, 1.5), ([2], 100_000_000, 100_000_001)]),
    ("f", 0, [([1], 1, 1), ([2], 100_000_000, 100_000_001)]),
    ("similar_elements", 0, [([1], (4, 5), (5, 4))]),
    ("similar_elements", 0, [([1], (4, 5), [5, 4, 4])]),
    ("similar_elements", 0, [([1], (4, 5), 5)]),
    ("similar_elements", 0, [([1], (1.0, 2.0), (2.0, 1.0))]),
    ("surface_Area", 0, [([3, 4], 33, 33), ([3, 4], 33, 35)]),
    ("surface_Area", 0, [([3, 4], 33, 34)]),
    ("digit_distance_nums", 0, [([123, 45], 6, 6), ([123, 45], 6, 5)]),
    ("digit_distance_nums", 0, [([123, 45], 6, 7)]),
    ("sum_div", 0, [([8], 7, 7), ([8], 7, 0)]),
    ("sum_div", 0, [([8], 7, 3)]),
    ("are_equivalent", 0, [([1, 2], True, None), ([1, 2], True, "anything")]),
]

EVALPLUS_SCRIPT = """
import json, sys
from evalplus.eval import untrusted_check
from pot.sandbox import values

verdicts = []
for entry_point, atol, encoded in json.loads(sys.stdin.read()):
    cases = [[values.decode(part) for part in case] for case in encoded]
    program = (
        "from pot.sandbox import values\\n"
        f"OUTPUTS = iter([values.decode(t) for t in {[c[2] for c in encoded]!r}])\\n"
        f"def {entry_point}(*arguments):\\n    return next(OUTPUTS)\\n"
    )
    status, _ = untrusted_check(
        "mbpp", program, [c[0] for c in cases], entry_point, [c[1] for c in cases], atol,
        [0.01] * len(cases), fast_check=True,
    )
    verdicts.append(status == "pass")
print(json.dumps(verdicts))
"""


def evalplus_verdicts() -> list[bool]:
    encoded = [
        [entry, atol, [[values.encode(part) for part in case] for case in cases]]
        for entry, atol, cases in CASES
    ]
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", EVALPLUS_SCRIPT],
        input=json.dumps(encoded),
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return json.loads(run.stdout)


def our_verdict(entry_point: str, atol: float, cases: list) -> bool:
    oracle = ORACLES.get(entry_point, "evalplus")
    atols = carried_atols(atol, [expected for _, expected, _ in cases])
    return all(
        outputs_match(actual, expected, Test("call", oracle=oracle, atol=test_atol), arguments)
        for (arguments, expected, actual), test_atol in zip(cases, atols, strict=True)
    )


def test_outputs_are_compared_as_evalplus_compares_them():
    theirs = evalplus_verdicts()
    ours = [our_verdict(*case) for case in CASES]
    differ = [(case, o, t) for case, o, t in zip(CASES, ours, theirs, strict=True) if o != t]
    assert differ == []
    assert 10 < sum(ours) < len(CASES)  # both outcomes are exercised
