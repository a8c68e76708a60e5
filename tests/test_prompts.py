import pytest

from pot.prompts import Attempt, build_prompt, closing_fence_end, extract_code
from pot.tasks import Task

TASK = Task(
    id="add",
    prompt="Write a function add(a, b) that returns the sum.",
    entry_point="add",
    starter_code="def add(a, b):\n    pass",
)
ATTEMPTS = [
    Attempt(
        program="def add(a, b):\n    return a - b", feedback="add(1, 2) returned -1, expected 3"
    ),
    Attempt(
        program="def add(a, b):\n    return a * b", feedback="add(1, 2) returned 2, expected 3"
    ),
    Attempt(program="def add(a, b):\n    return b", feedback="add(1, 2) returned 2, expected 3"),
]


def user_text(messages: list[dict[str, str]]) -> str:
    assert [message["role"] for message in messages] == ["user"]
    return messages[0]["content"]


def test_first_prompt_has_problem_starter_code_and_instruction():
    text = user_text(build_prompt(TASK))
    assert text.startswith(TASK.prompt)
    assert "```python\ndef add(a, b):\n    pass\n```" in text
    assert "Attempt" not in text
    assert text.endswith(
        "Write a complete Python program that solves the problem, in one ```python code block."
        " It defines the function `add`."
    )


def test_attempts_follow_the_problem_oldest_first_with_their_feedback():
    text = user_text(build_prompt(TASK, ATTEMPTS))
    positions = [text.index(attempt.program) for attempt in ATTEMPTS]
    assert text.index(TASK.prompt) < positions[0] < positions[1] < positions[2]
    for attempt in ATTEMPTS:
        assert attempt.feedback in text
    assert "Write a corrected complete Python program" in text
    assert text.rindex("Write a corrected") > positions[2]


def test_stdio_task_asks_for_standard_input_and_output():
    task = Task(id="echo", prompt="Print the input.", kind="stdio")
    assert "reads the input from standard input" in user_text(build_prompt(task))


def test_budget_keeps_the_newest_attempts():
    full = len(user_text(build_prompt(TASK, ATTEMPTS)))
    without_oldest = len(user_text(build_prompt(TASK, ATTEMPTS[1:])))
    text = user_text(build_prompt(TASK, ATTEMPTS, count_tokens=len, max_tokens=full - 1))
    assert len(text) == without_oldest
    assert ATTEMPTS[0].program not in text
    assert ATTEMPTS[1].program in text and ATTEMPTS[2].program in text


def test_budget_too_small_for_any_attempt_keeps_the_problem():
    text = user_text(build_prompt(TASK, ATTEMPTS, count_tokens=len, max_tokens=10))
    assert text == user_text(build_prompt(TASK))


def test_budget_needs_both_arguments():
    with pytest.raises(ValueError, match="count_tokens and max_tokens"):
        build_prompt(TASK, ATTEMPTS, max_tokens=100)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Here:\n```python\nx = 1\n```\nDone.", "x = 1\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```python\nx = 1\n```\n```python\ny = 2\n```", "x = 1\n"),
        ("Sure!\n```python\ndef f():\n    return 1", "def f():\n    return 1"),
        ("x = 1\nprint(x)", "x = 1\nprint(x)"),
    ],
)
def test_extract_code(text, code):
    assert extract_code(text) == code


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("```python\nx = 1\n```", 19),
        ("Sure:\n```python\nx = 1\n```\nmore", 25),
        ("```python\nx = 1\n", None),
        ("```python", None),
        ("no fence at all", None),
    ],
)
def test_closing_fence_end(text, end):
    assert closing_fence_end(text) == end
