"""Self-repair (Reflexion-style): sequential rounds, each shown every earlier program and its
execution feedback, asked for a corrected program."""

from __future__ import annotations

from dataclasses import dataclass

from pot.budget import Ledger
from pot.policy import Policy
from pot.sandbox import Sandbox
from pot.search import Tree, expand, path_prompt
from pot.tasks import Task


@dataclass
class SelfRepairConfig:
    rounds: int = 10  # Reflexion's setting in the paper's comparison
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 2048
    max_prompt_tokens: int = 6144
    early_stop: bool = True


def run(
    task: Task,
    policy: Policy,
    sandbox: Sandbox,
    ledger: Ledger,
    config: SelfRepairConfig,
    seed: int = 0,
) -> Tree:
    tree = Tree()
    node = tree.root
    for round_ in range(config.rounds):
        if ledger.exhausted():
            break
        prompt = path_prompt(task, tree.path(node), policy, config.max_prompt_tokens)
        completions = ledger.sample(
            policy,
            prompt,
            1,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
            seed=seed * 1_000_003 + round_,
            logprobs=False,
        )
        if not completions:
            break
        (node,) = expand(tree, node, task, sandbox, ledger, completions, "sampled", policy)
        if config.early_stop and node.reward >= 1.0:
            break
    return tree
