"""Budgets and cost accounting shared by every method, so comparisons are made at equal cost.

A `Ledger` is the only way a method generates, executes or trains: it times each call, counts
what it consumed and answers whether the budget allows more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Budget:
    """Whichever limit is reached first stops a method. `None` means unlimited."""

    programs: int | None = None
    tokens: int | None = None  # generated tokens
    seconds: float | None = None
    simulations: int | None = None  # tree-search methods only; counted by the method

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and value <= 0:
                raise ValueError(
                    f"bad budget {name}={value:g}: a limit must be positive (leave it out for "
                    "no limit)"
                )

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Parse 'programs=12,tokens=20000,seconds=300'; each name at most once."""
        names = ", ".join(cls.__dataclass_fields__)
        limits: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(f"bad budget item {item!r}: use NAME=VALUE with NAME in {names}")
            if key in limits:
                raise ValueError(f"bad budget {text!r}: {key} is given twice")
            try:
                limits[key] = float(value) if key == "seconds" else int(value)
            except ValueError:
                kind = "a number" if key == "seconds" else "a whole number"
                raise ValueError(f"bad budget value {item!r}: {key} needs {kind}") from None
        return cls(**limits)


@dataclass
class Costs:
    programs: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    executions: int = 0
    gradient_steps: int = 0
    skipped_updates: int = 0
    generate_s: float = 0.0
    execute_s: float = 0.0
    train_s: float = 0.0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ledger:
    budget: Budget
    clock: Callable[[], float] = time.monotonic
    costs: Costs = field(default_factory=Costs)
    simulations: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def programs_left(self) -> float:
        b = self.budget
        return float("inf") if b.programs is None else b.programs - self.costs.programs

    def tokens_left(self) -> float:
        b = self.budget
        return float("inf") if b.tokens is None else b.tokens - self.costs.generated_tokens

    def exhausted(self) -> bool:
        b = self.budget
        return (
            self.programs_left() <= 0
            or self.tokens_left() <= 0
            or (b.seconds is not None and self.elapsed() >= b.seconds)
        )

    def affordable(self, n: int, max_new_tokens: int) -> tuple[int, int]:
        """How many programs of how many new tokens each the budget still allows."""
        n = int(min(n, self.programs_left()))
        if n <= 0:
            return 0, 0
        return n, int(min(max_new_tokens, self.tokens_left() // n))

    def sample(self, policy: Any, prompt: Any, n: int, *, greedy: bool = False, **kw: Any) -> list:
        """Up to `n` completions of `prompt`, cut to what the budget allows."""
        n, max_new_tokens = self.affordable(n, kw.pop("max_new_tokens"))
        if n == 0 or max_new_tokens == 0:
            return []
        start = time.perf_counter()
        if greedy:
            completions = [policy.greedy(prompt, max_new_tokens=max_new_tokens, **kw)]
        else:
            completions = policy.sample(prompt, n, max_new_tokens=max_new_tokens, **kw)
        self.costs.generate_s += time.perf_counter() - start
        self.costs.programs += len(completions)
        self.costs.generated_tokens += sum(len(c.token_ids) for c in completions)
        # Siblings share one prompt, processed once per call.
        self.costs.prompt_tokens += max(c.prompt_tokens for c in completions)
        return completions

    def evaluate(self, sandbox: Any, task: Any, programs: list[str]) -> list:
        """Run programs on the task's public tests (the only tests a method is given)."""
        start = time.perf_counter()
        jobs = [(p, task.public_tests, task.entry_point, task.setup_code) for p in programs]
        evaluations = sandbox.evaluate_many(jobs)
        self.costs.execute_s += time.perf_counter() - start
        self.costs.executions += len(programs)
        return evaluations

    def update(self, trainer: Any, prompt: Any, completions: list, rewards: list[float]) -> Any:
        start = time.perf_counter()
        stats = trainer.update(prompt, completions, rewards)
        self.costs.train_s += time.perf_counter() - start
        self.costs.gradient_steps += stats.steps
        self.costs.skipped_updates += int(stats.skipped)
        return stats

    def finish(self) -> Costs:
        self.costs.wall_s = self.elapsed()
        return self.costs
