"""Policy of Thoughts: test-time policy evolution for LLM reasoning on code."""

from typing import Any

from pot.budget import Budget
from pot.tasks import Task, Test

__all__ = ["Budget", "Task", "Test", "solve"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `pot.solve` pulls in torch and the model code: load it only when asked for.
    if name == "solve":
        from pot.api import solve

        return solve
    raise AttributeError(f"module 'pot' has no attribute {name!r}")
