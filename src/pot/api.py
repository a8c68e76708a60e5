"""The Python API: `pot.solve(task, method="pot")` with the policy and sandbox made on demand."""

from __future__ import annotations

from functools import cache
from typing import Any

from pot.budget import Budget
from pot.methods import solve as solve_with
from pot.methods.common import Result
from pot.sandbox import Sandbox
from pot.tasks import Task, get_task


@cache
def load_policy(model: str = "default", engine: str = "auto") -> Any:
    """engine: auto, transformers, llamacpp or vllm (see pot.policy.engines)."""
    from pot.policy.engines import load_policy as load_with_engine

    return load_with_engine(model, engine)


def open_sandbox() -> Sandbox:
    return Sandbox()


@cache
def _shared_sandbox() -> Sandbox:
    return open_sandbox()


def solve(
    task: Task | str,
    method: str = "pot",
    *,
    config: Any = None,
    budget: Budget | str | None = None,
    model: str = "default",
    engine: str = "auto",
    policy: Any = None,
    sandbox: Sandbox | None = None,
    seed: int = 0,
    oracle: bool = False,
) -> Result:
    """Solve one task (a `Task` or a spec such as "mbpp:validation/523") with one method."""
    task = get_task(task) if isinstance(task, str) else task
    budget = Budget.parse(budget) if isinstance(budget, str) else budget
    return solve_with(
        task,
        policy or load_policy(model, engine),
        sandbox or _shared_sandbox(),
        method,
        config=config,
        budget=budget,
        seed=seed,
        oracle=oracle,
    )
