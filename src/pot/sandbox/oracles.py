"""How the trusted side decides whether a call test's return value matches the expected one.

Both values arrive decoded by `pot.sandbox.values` (builtin types only). `Test.oracle` names
the rule; "" is equality as JSON data, so a returned tuple equals an expected list (the rule
LiveCodeBench's JSON test cases imply).
"""

from __future__ import annotations

from pot.tasks.task import Test


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
    raise ValueError(f"unknown oracle {test.oracle!r}")
