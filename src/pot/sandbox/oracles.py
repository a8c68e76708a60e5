"""How the trusted side decides whether a call test's return value matches the expected one.

Both values arrive decoded by `pot.sandbox.values` (builtin types only). `Test.oracle` names
the rule; "" is equality as JSON data, so a returned tuple equals an expected list (the rule
LiveCodeBench's JSON test cases imply). The "evalplus" rules reproduce how EvalPlus 0.3.1
grades an MBPP+ output (evalplus/eval/__init__.py, `unsafe_execute`): Python `==` first, then
the task's special oracle, then for float outputs `np.allclose` at the test's atol. (EvalPlus's
not-None tasks are assert tests, made by pot.tasks.mbppplus.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pot.tasks.task import Test

FLOAT_ATOL = 1e-6  # evalplus `unsafe_execute`: enforced when the task's atol is 0
FLOAT_RTOL = 1e-7  # evalplus `unsafe_execute`: np.allclose(out, exp, rtol=1e-07, atol=atol)


def as_json_data(value: object) -> object:
    if type(value) in (list, tuple):
        return [as_json_data(item) for item in value]
    if type(value) is dict:
        return {key: as_json_data(item) for key, item in value.items()}
    return value


def outputs_match(
    actual: object, expected: object, test: Test, arguments: list | None = None
) -> bool:
    """`arguments` are the call's decoded arguments, for oracles that check the answer
    against the input rather than against `expected`."""
    if test.oracle == "":
        return as_json_data(actual) == as_json_data(expected)
    if test.oracle in EVALPLUS_ORACLES:
        return evalplus_match(actual, expected, test, arguments or [])
    raise ValueError(f"unknown oracle {test.oracle!r}")


def evalplus_match(actual: object, expected: object, test: Test, arguments: list) -> bool:
    """EvalPlus's verdict on one MBPP+ input (evalplus/eval/__init__.py, `unsafe_execute`).

    `test.atol` is the atol in force when EvalPlus reaches this input: it keeps the 1e-6 it
    set for an earlier float output of the same group (the loader works that out)."""
    try:
        exact = EVALPLUS_ORACLES[test.oracle](actual, expected, arguments, test.atol)
        atol = test.atol
        if atol == 0 and is_floats(expected):
            atol = FLOAT_ATOL
        if not exact and atol != 0:
            return all_close(actual, expected, atol)
        return bool(exact)
    except Exception:  # noqa: BLE001 - EvalPlus counts any exception of the check as a failure
        return False


def is_floats(value: object) -> bool:
    """evalplus/eval/__init__.py `is_floats`: a float, or a non-empty list/tuple of floats."""
    if isinstance(value, float):
        return True
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(item, float) for item in value)
    )


def all_close(actual: object, expected: object, atol: float) -> bool:
    """The float branch of `unsafe_execute`: same type, same length, np.allclose."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)) and len(actual) != len(expected):
        return False
    with np.errstate(all="ignore"):
        return bool(np.allclose(actual, expected, rtol=FLOAT_RTOL, atol=atol))


def equal(actual: object, expected: object, arguments: list, atol: float) -> bool:
    return actual == expected


def set_equal(actual: object, expected: object, arguments: list, atol: float) -> bool:
    """MBPP_OUTPUT_SET_EQ_TASKS (evalplus/eval/_special_oracle.py): order does not matter."""
    return set(actual) == set(expected)


def always(actual: object, expected: object, arguments: list, atol: float) -> bool:
    """Mbpp/164 `are_equivalent`: EvalPlus accepts any answer that returns."""
    return True


def sum_div(actual: object, expected: object, arguments: list, atol: float) -> bool:
    """Mbpp/295 `sum_div`: the expected value, or 0."""
    return actual == expected or actual == 0


def surface_area(actual: object, expected: object, arguments: list, atol: float) -> bool:
    """Mbpp/581 `surface_Area`: the expected value, or the area of a square pyramid whose
    second argument is the perpendicular height (EvalPlus's `_surface_Area`)."""
    return actual == expected or abs(actual - pyramid_area(*arguments)) <= atol


def pyramid_area(base_edge: float, height: float) -> int:
    # The operations in EvalPlus's order, so that round() sees the same float.
    slant = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant) / 2)


def digit_distance(actual: object, expected: object, arguments: list, atol: float) -> bool:
    """Mbpp/558 `digit_distance_nums`: the expected value, or the digit distance with the
    shorter number padded by leading zeros (EvalPlus's `_digit_distance_nums`)."""
    return actual == expected or actual == padded_digit_distance(*arguments)


def padded_digit_distance(first: int, second: int) -> int:
    left, right = str(first), str(second)
    width = max(len(left), len(right))
    pairs = zip(left.zfill(width), right.zfill(width), strict=True)
    return sum(abs(int(a) - int(b)) for a, b in pairs)


EVALPLUS_ORACLES: dict[str, Callable[[object, object, list, float], bool]] = {
    "evalplus": equal,
    "evalplus-set": set_equal,
    "evalplus-always": always,
    "evalplus-sum-div": sum_div,
    "evalplus-surface-area": surface_area,
    "evalplus-digit-distance": digit_distance,
}
