"""Zero-shot: one greedy program, no feedback."""

from __future__ import annotations

from dataclasses import dataclass

from pot.budget import Ledger
from pot.policy import Policy
from pot.prompts import build_prompt
from pot.sandbox import Sandbox
from pot.search import Tree, expand
from pot.tasks import Task


@dataclass
class ZeroShotConfig:
    max_new_tokens: int = 2048


def run(
    task: Task,
    policy: Policy,
    sandbox: Sandbox,
    ledger: Ledger,
    config: ZeroShotConfig,
    seed: int = 0,
) -> Tree:
    tree = Tree()
    prompt = build_prompt(task, [])
    completions = ledger.sample(
        policy, prompt, 1, greedy=True, max_new_tokens=config.max_new_tokens, logprobs=False
    )
    expand(tree, tree.root, task, sandbox, ledger, completions, "sampled", policy)
    return tree
