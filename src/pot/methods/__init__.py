"""Test-time methods, all run by `solve` on the same policy, sandbox and budget accounting.

Each method module has a config dataclass with its paper's defaults and a
`run(task, policy, sandbox, ledger, config, seed) -> Tree`; the tree holds every program it
wrote (a chain for self-repair, a fan for best-of-N). `solve` gives the method a public-only
view of the task and, after the method is done, judges the answer and every other program it
wrote on the hidden tests (`judge_after`), outside anything the method can read.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

import torch

from pot.budget import Budget, Ledger
from pot.methods import best_of_n, icpo, pot, search_only, self_repair, zero_shot
from pot.methods.common import Result, first_solved, group_scores, public_view
from pot.overrides import apply_overrides
from pot.search import Tree

METHODS: dict[str, tuple[Callable[..., Tree], type]] = {
    "zero-shot": (zero_shot.run, zero_shot.ZeroShotConfig),
    "best-of-n": (best_of_n.run, best_of_n.BestOfNConfig),
    "self-repair": (self_repair.run, self_repair.SelfRepairConfig),
    "search-only": (search_only.run, search_only.SearchOnlyConfig),
    "pot": (pot.run, pot.PoTConfig),
    "me-icpo": (icpo.run, icpo.ICPOConfig),
}
TREE_SEARCH = {"search-only", "pot"}


class UnknownMethodError(ValueError):
    pass


def _method(method: str) -> tuple[Callable[..., Tree], type]:
    if method not in METHODS:
        raise UnknownMethodError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    return METHODS[method]


def method_config(method: str, overrides: dict[str, Any] | None = None) -> Any:
    """The method's default config with dotted overrides, e.g. {"search.k": 8}; a key may
    name the method first, as `pot bench` takes it ({"pot.search.k": 8})."""
    own = {key.removeprefix(f"{method}."): value for key, value in (overrides or {}).items()}
    return apply_overrides(_method(method)[1](), own, f"method {method!r}")


def solve(
    task: Any,
    policy: Any,
    sandbox: Any,
    method: str = "pot",
    *,
    config: Any = None,
    budget: Budget | None = None,
    seed: int = 0,
    oracle: bool = False,
    on_simulation: Callable[[Tree], None] | None = None,
) -> Result:
    run, _ = _method(method)
    config = config if config is not None else method_config(method)
    random.seed(seed)
    torch.manual_seed(seed)
    policy.reset()
    ledger = Ledger(budget or Budget())
    view = public_view(task, oracle)
    kwargs = {"on_simulation": on_simulation} if method in TREE_SEARCH else {}
    tree = run(view, policy, sandbox, ledger, config, seed=seed, **kwargs)
    costs = ledger.finish()
    best = tree.best()
    answer = best.program if best else ""
    posthoc, judged = judge_after(task, tree, sandbox)
    hidden = judged.get(answer) or sandbox.evaluate_task(task, answer, split="hidden")
    return Result(
        task_id=task.id,
        method=method,
        seed=seed,
        oracle=oracle,
        answer=answer,
        public_reward=best.reward if best else 0.0,
        hidden_passed=hidden.all_passed,
        hidden_reward=hidden.reward,
        hidden_verdict=hidden.verdict.value,
        hidden_groups=group_scores(task, hidden),
        first_solved_program=first_solved(tree),
        costs=costs,
        config=dataclasses.asdict(config),
        trace=tree.to_dict(),
        public_tests=len(view.public_tests),
        posthoc=posthoc,
    )


def judge_after(task: Any, tree: Tree, sandbox: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every distinct program of `tree` (by text, in generation order) run on the hidden tests
    in one batch, each stopping at its first failing test as the answer's run does: its
    nodes, public reward and hidden verdict. Called once the method has returned, so nothing
    here can reach it; the report's hidden curves are drawn from it. Also returns each
    program's Evaluation by text, so the answer is not run a second time."""
    nodes_of: dict[str, list[int]] = {}
    for node in tree.nodes[1:]:
        nodes_of.setdefault(node.program, []).append(node.id)
    start = time.perf_counter()
    jobs = [(p, task.hidden_tests, task.entry_point, task.setup_code) for p in nodes_of]
    evaluations = sandbox.evaluate_many(jobs, stop_at_first_failure=True)
    programs = [
        {
            "nodes": ids,
            "public_reward": tree.nodes[ids[0]].reward,
            "hidden_passed": ev.all_passed,
            "hidden_verdict": ev.verdict.value,
            "hidden_groups": group_scores(task, ev),
        }
        for ids, ev in zip(nodes_of.values(), evaluations, strict=True)
    ]
    posthoc = {"programs": programs, "seconds": time.perf_counter() - start}
    return posthoc, dict(zip(nodes_of, evaluations, strict=True))
