"""Search-only: PoT's tree search with policy evolution switched off (the key ablation).

It runs exactly the same search code as PoT; the only difference is that no update is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pot.budget import Ledger
from pot.policy import Policy
from pot.sandbox import Sandbox
from pot.search import SearchConfig, Tree, run_search
from pot.tasks import Task


@dataclass
class SearchOnlyConfig:
    search: SearchConfig = field(default_factory=SearchConfig)


def run(
    task: Task,
    policy: Policy,
    sandbox: Sandbox,
    ledger: Ledger,
    config: SearchOnlyConfig,
    seed: int = 0,
    on_simulation=None,
) -> Tree:
    return run_search(
        task, policy, sandbox, ledger, config.search, seed=seed, on_simulation=on_simulation
    )
