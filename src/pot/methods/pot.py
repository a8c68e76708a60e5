"""Policy of Thoughts: PUCT search whose every sibling group updates a per-problem LoRA adapter
by GRPO, followed by action commitment from the evolved policy (SPEC section 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pot.budget import Ledger
from pot.evolve.grpo import GRPOConfig, GRPOTrainer
from pot.policy import Policy
from pot.sandbox import Sandbox
from pot.search import SearchConfig, Tree, run_search
from pot.tasks import Task


@dataclass
class PoTConfig:
    search: SearchConfig = field(default_factory=SearchConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)


def run(
    task: Task,
    policy: Policy,
    sandbox: Sandbox,
    ledger: Ledger,
    config: PoTConfig,
    seed: int = 0,
    on_simulation=None,
) -> Tree:
    trainer = GRPOTrainer(policy, config.grpo)
    return run_search(
        task,
        policy,
        sandbox,
        ledger,
        config.search,
        trainer=trainer,
        seed=seed,
        on_simulation=on_simulation,
    )
