"""The PoT prompt (problem + earlier attempts with their feedback) and code extraction."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pot.tasks import Task

Message = dict[str, str]

_FENCED_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_UNCLOSED_BLOCK = re.compile(r"```[^\n`]*\n(.*)\Z", re.DOTALL)


@dataclass(frozen=True)
class Attempt:
    """An earlier program on the search path and the execution feedback it got."""

    program: str
    feedback: str


def build_prompt(
    task: Task,
    attempts: Sequence[Attempt] = (),
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> list[Message]:
    """One system-less user turn: the problem, the attempts (oldest first), the instruction.

    With `count_tokens` and `max_tokens`, the oldest attempts are dropped until the user turn
    fits; the problem and the instruction are always kept.
    """
    if (count_tokens is None) != (max_tokens is None):
        raise ValueError("pass both count_tokens and max_tokens to bound the prompt, or neither")
    kept = list(attempts)
    text = _user_text(task, kept)
    while kept and count_tokens is not None and count_tokens(text) > max_tokens:
        kept = kept[1:]
        text = _user_text(task, kept)
    return [{"role": "user", "content": text}]


def _user_text(task: Task, attempts: Sequence[Attempt]) -> str:
    parts = [task.prompt.strip()]
    if task.starter_code.strip():
        parts.append(f"Starter code:\n```python\n{task.starter_code.strip()}\n```")
    for number, attempt in enumerate(attempts, start=1):
        parts.append(
            f"Attempt {number}:\n```python\n{attempt.program.strip()}\n```\n"
            f"Execution feedback:\n{attempt.feedback.strip()}"
        )
    parts.append(_instruction(task, corrected=bool(attempts)))
    return "\n\n".join(parts)


def _instruction(task: Task, *, corrected: bool) -> str:
    what = "a corrected complete Python program" if corrected else "a complete Python program"
    if task.kind == "stdio":
        io = " It reads the input from standard input and prints the answer."
    elif task.entry_point:
        io = f" It defines the function `{task.entry_point}`."
    else:
        io = ""
    return f"Write {what} that solves the problem, in one ```python code block.{io}"


def closing_fence_end(text: str) -> int | None:
    """Index just past the ``` that closes the first fenced block, or None while it is open."""
    opening = text.find("```")
    if opening < 0:
        return None
    line_end = text.find("\n", opening)
    if line_end < 0:
        return None
    closing = text.find("```", line_end)
    return None if closing < 0 else closing + 3


def extract_code(text: str) -> str:
    """The first fenced code block (```python or ```), an unclosed final block, or all text."""
    match = _FENCED_BLOCK.search(text) or _UNCLOSED_BLOCK.search(text)
    return match.group(1) if match else text
