"""How the host decides whether an actual output matches the expected one."""

from __future__ import annotations

import math
import re

FLOAT_TOLERANCE = 1e-6  # absolute or relative, for tokens that are not both integers
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


def stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def numbers_match(actual: str, expected: str) -> bool:
    try:
        actual_value, expected_value = float(actual), float(expected)
    except ValueError:
        return False
    if INTEGER.fullmatch(actual) and INTEGER.fullmatch(expected):
        return int(actual) == int(expected)
    return math.isclose(
        actual_value, expected_value, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE
    )


def tokens_match(actual_line: str, expected_line: str) -> bool:
    actual, expected = actual_line.split(), expected_line.split()
    return len(actual) == len(expected) and all(
        a == e or numbers_match(a, e) for a, e in zip(actual, expected, strict=True)
    )


def stdout_matches(actual: str, expected: str) -> bool:
    """Exact match; else line by line ignoring surrounding whitespace; else token by token with
    numbers compared as numbers, floats within FLOAT_TOLERANCE (as LiveCodeBench grades stdio)."""
    if actual == expected:
        return True
    actual_lines, expected_lines = stripped_lines(actual), stripped_lines(expected)
    return len(actual_lines) == len(expected_lines) and all(
        a == e or tokens_match(a, e) for a, e in zip(actual_lines, expected_lines, strict=True)
    )
