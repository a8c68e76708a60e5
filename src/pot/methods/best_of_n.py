"""Best-of-N: N independent samples, the answer is the best on the public tests."""

from __future__ import annotations

from dataclasses import dataclass

from pot.budget import Ledger
from pot.policy import Policy
from pot.prompts import build_prompt
from pot.sandbox import Sandbox
from pot.search import Tree, expand
from pot.tasks import Task


@dataclass
class BestOfNConfig:
    n: int = 20  # the paper's baseline
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 2048
    batch_size: int = 4  # samples per generate call; early stop is checked between batches
    early_stop: bool = True


def run(
    task: Task,
    policy: Policy,
    sandbox: Sandbox,
    ledger: Ledger,
    config: BestOfNConfig,
    seed: int = 0,
) -> Tree:
    tree = Tree()
    prompt = build_prompt(task, [])
    batch = 0
    while len(tree.nodes) - 1 < config.n and not ledger.exhausted():
        n = min(config.batch_size, config.n - (len(tree.nodes) - 1))
        completions = ledger.sample(
            policy,
            prompt,
            n,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
            seed=seed * 1_000_003 + batch,
            logprobs=False,
        )
        if not completions:
            break
        children = expand(tree, tree.root, task, sandbox, ledger, completions, "sampled", policy)
        batch += 1
        if config.early_stop and any(c.reward >= 1.0 for c in children):
            break
    return tree
