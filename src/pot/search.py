"""Monte Carlo tree search over complete programs, with PUCT selection (SPEC section 2).

A node is one program ("code thought"); its state is the problem plus the (program, feedback)
pairs on the path from the root. A child is evaluated when created, so it starts with N = 1,
W = R. Priors are a softmax over siblings of each one's mean token log-probability.

With a trainer (PoT), every sibling group is offered to GRPO as one update, and the tree keeps
a record of each: what the trainer computed (`UpdateStats`), the group's rewards, the policy
version before and after, and why a group was not trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pot.prompts import Attempt, build_prompt, closing_fence_end, extract_code

if TYPE_CHECKING:
    from collections.abc import Callable

    from pot.budget import Ledger
    from pot.evolve.grpo import GRPOTrainer
    from pot.policy import Completion, Policy
    from pot.sandbox import Sandbox
    from pot.sandbox.results import Evaluation
    from pot.tasks import Task

Creator = Literal["root", "sampled", "committed"]
Finish = Literal["fence", "eos", "length", ""]  # "": the root, which has no completion


@dataclass
class Node:
    id: int
    parent: int | None
    depth: int
    creator: Creator
    program: str = ""
    completion: str = ""
    feedback: str = ""
    reward: float = 0.0
    verdict: str = ""
    mean_logprob: float = 0.0
    finish_reason: Finish = ""  # closing code fence, eos token, or max_new_tokens reached
    tokens: int = 0  # generated tokens
    prompt_tokens: int = 0
    prior: float = 1.0
    visits: int = 0
    value_sum: float = 0.0
    policy_version: int = 0
    simulation: int = 0
    created_s: float = 0.0
    children: list[int] = field(default_factory=list)

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


class Tree:
    def __init__(self) -> None:
        self.nodes: list[Node] = [Node(id=0, parent=None, depth=0, creator="root")]
        self.updates: list[dict[str, Any]] = []  # one record per sibling group offered to GRPO

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add_child(self, parent: Node, creator: Creator, **fields: Any) -> Node:
        child = Node(id=len(self.nodes), parent=parent.id, depth=parent.depth + 1, creator=creator)
        for name, value in fields.items():
            setattr(child, name, value)
        child.visits, child.value_sum = 1, child.reward
        self.nodes.append(child)
        parent.children.append(child.id)
        self.set_priors(parent)
        self.backup(parent, child.reward)
        return child

    def set_priors(self, parent: Node) -> None:
        siblings = [self.nodes[i] for i in parent.children]
        top = max(s.mean_logprob for s in siblings)
        weights = [math.exp(s.mean_logprob - top) for s in siblings]
        total = sum(weights)
        for sibling, weight in zip(siblings, weights, strict=True):
            sibling.prior = weight / total

    def backup(self, node: Node | None, reward: float) -> None:
        """Add one visit with value `reward` to `node` and every ancestor."""
        while node is not None:
            node.visits += 1
            node.value_sum += reward
            node = None if node.parent is None else self.nodes[node.parent]

    def path(self, node: Node) -> list[Node]:
        """Program nodes from the root's first child down to `node`."""
        path = []
        while node.parent is not None:
            path.append(node)
            node = self.nodes[node.parent]
        return path[::-1]

    def puct(self, parent: Node, child: Node, c_puct: float) -> float:
        return child.q + c_puct * child.prior * math.sqrt(parent.visits) / (1 + child.visits)

    def expandable(self, node: Node, max_depth: int) -> bool:
        """A node can still lead to an expansion: a leaf below max depth that has not solved the
        public tests, or an inner node with such a descendant."""
        if not node.children:
            return node.depth < max_depth and (node.creator == "root" or node.reward < 1.0)
        return any(self.expandable(self.nodes[i], max_depth) for i in node.children)

    def select(self, c_puct: float, max_depth: int) -> Node | None:
        """Descend from the root by PUCT to the leaf to expand; None when none is left."""
        node = self.root
        if not self.expandable(node, max_depth):
            return None
        while node.children:
            candidates = [
                self.nodes[i] for i in node.children if self.expandable(self.nodes[i], max_depth)
            ]
            # max() keeps the first of equal scores: the oldest child wins ties.
            node = max(candidates, key=lambda child, p=node: self.puct(p, child, c_puct))
        return node

    def best(self) -> Node | None:
        """Highest public reward; ties go to the newest program."""
        programs = self.nodes[1:]
        return max(reversed(programs), key=lambda n: n.reward) if programs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "tree",
            "nodes": [asdict(n) for n in self.nodes],
            "updates": [dict(u) for u in self.updates],
        }


@dataclass
class SearchConfig:
    """PoT's search; the defaults are the paper's (SPEC section 2)."""

    k: int = 3  # programs sampled per expansion (the GRPO group)
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 2048
    max_prompt_tokens: int = 6144  # older attempts on the path are dropped beyond this
    c_puct: float = 1.414
    max_depth: int = 4
    simulations: int = 20  # M
    early_stop: bool = True  # stop as soon as a program passes every public test
    commit: bool = True  # action commitment: greedy program of the evolved policy per expansion
    # Each simulation samples k more programs from the root state instead of descending by
    # PUCT, so each update trains exactly the state that is sampled next (max_depth unused).
    root_widening: bool = False


def run_search(
    task: Task,
    policy: Policy,
    sandbox: Sandbox,
    ledger: Ledger,
    config: SearchConfig,
    *,
    trainer: GRPOTrainer | None = None,
    seed: int = 0,
    on_simulation: Callable[[Tree], None] | None = None,
) -> Tree:
    """PUCT search; with a `trainer`, each sibling group also updates the policy (PoT)."""
    tree = Tree()
    simulations = min(config.simulations, ledger.budget.simulations or config.simulations)
    while ledger.simulations < simulations and not ledger.exhausted():
        leaf = tree.root if config.root_widening else tree.select(config.c_puct, config.max_depth)
        if leaf is None:
            break
        ledger.simulations += 1
        prompt = path_prompt(task, tree.path(leaf), policy, config.max_prompt_tokens)
        completions = ledger.sample(
            policy,
            prompt,
            config.k,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
            seed=seed * 1_000_003 + ledger.simulations,
        )
        if not completions:
            break
        children = expand(tree, leaf, task, sandbox, ledger, completions, "sampled", policy)
        if trainer is not None:
            train(tree, leaf, children, trainer, ledger, prompt, completions, config)
        if config.commit and not _done(tree, ledger, config):
            greedy = ledger.sample(
                policy, prompt, 1, greedy=True, max_new_tokens=config.max_new_tokens
            )
            expand(tree, leaf, task, sandbox, ledger, greedy, "committed", policy)
        if on_simulation is not None:
            on_simulation(tree)
        if _done(tree, ledger, config):
            break
    return tree


def train(
    tree: Tree,
    state: Node,
    group: list[Node],
    trainer: GRPOTrainer,
    ledger: Ledger,
    prompt: list[dict],
    completions: list[Completion],
    config: SearchConfig,
) -> None:
    """Offer one sibling group to GRPO and record the outcome in `tree.updates`.

    The search does not call the trainer when the group ends the search (solved, or the budget
    is spent: nothing would sample from the update) or has one program (no advantage).
    """
    rewards = [node.reward for node in group]
    version = trainer.policy.version
    record: dict[str, Any] = {
        "index": len(tree.updates) + 1,
        "simulation": ledger.simulations,
        "state": state.id,  # the node whose prompt the group was sampled from
        "group": [node.id for node in group],
        "rewards": rewards,
        "version_before": version,
        "programs_before": ledger.costs.programs,  # programs spent when it was offered
    }
    reason = _not_offered(tree, ledger, config, group)
    if reason:
        record.update(skipped=True, version=version, steps=0, applied=False, reason=reason)
    else:
        stats = ledger.update(trainer, prompt, completions, rewards)
        record.update(asdict(stats))
        default = "equal rewards: every advantage is zero" if stats.skipped else ""
        record.update(applied=not stats.skipped, reason=getattr(stats, "reason", "") or default)
    record["at_s"] = ledger.elapsed()
    tree.updates.append(record)


def _not_offered(tree: Tree, ledger: Ledger, config: SearchConfig, group: list[Node]) -> str:
    if config.early_stop and any(n.reward >= 1.0 for n in group):
        return "solved: a program passed every public test, the search stops"
    if _done(tree, ledger, config):
        return "budget spent: nothing would sample from the update"
    if len(group) < 2:
        return "one program: no advantage without siblings"
    return ""


def describe_update(update: dict[str, Any]) -> str:
    """One line for a terminal: the group's rewards and advantages, and what became of it."""
    rewards = " ".join(f"{r:.2f}" for r in update["rewards"])
    line = f"update {update['index']} on node {update['state']}: rewards {rewards}"
    if update["applied"]:
        advantages = " ".join(f"{a:+.2f}" for a in update["advantages"])
        return (
            f"{line}  advantages {advantages}  applied: policy v{update['version_before']} -> "
            f"v{update['version']}  (loss {update['loss']:.4f}, KL {update['kl']:.4f}, "
            f"{update['seconds']:.1f} s)"
        )
    return f"{line}  skipped ({update['reason']}): policy stays v{update['version']}"


def path_prompt(task: Task, path: list[Node], policy: Policy, max_tokens: int) -> list[dict]:
    """The state's prompt: the problem and each (program, feedback) on the path, newest kept."""
    attempts = [Attempt(n.program, n.feedback) for n in path]
    return build_prompt(task, attempts, count_tokens=policy.count_tokens, max_tokens=max_tokens)


def _done(tree: Tree, ledger: Ledger, config: SearchConfig) -> bool:
    solved = config.early_stop and any(n.reward >= 1.0 for n in tree.nodes[1:])
    return solved or ledger.exhausted()


def expand(
    tree: Tree,
    leaf: Node,
    task: Task,
    sandbox: Sandbox,
    ledger: Ledger,
    completions: list[Completion],
    creator: Creator,
    policy: Policy,
) -> list[Node]:
    """Run each completion's program on the public tests; add it as a child of `leaf`."""
    evaluated = expand_evaluated(
        tree, leaf, task, sandbox, ledger, completions, creator, policy, ledger.simulations
    )
    return [node for node, _ in evaluated]


def expand_evaluated(
    tree: Tree,
    leaf: Node,
    task: Task,
    sandbox: Sandbox,
    ledger: Ledger,
    completions: list[Completion],
    creator: Creator,
    policy: Policy,
    simulation: int,
) -> list[tuple[Node, Evaluation]]:
    """`expand`, keeping each child's full evaluation, at a given simulation number."""
    programs = [extract_code(c.text) for c in completions]
    evaluations = ledger.evaluate(sandbox, task, programs)
    children = [
        tree.add_child(
            leaf,
            creator,
            program=program,
            completion=c.text,
            feedback=ev.feedback,
            reward=ev.reward,
            verdict=ev.verdict.value,
            mean_logprob=c.mean_logprob,
            finish_reason=finish_reason(c),
            tokens=len(c.token_ids),
            prompt_tokens=c.prompt_tokens,
            policy_version=policy.version,
            simulation=simulation,
            created_s=ledger.elapsed(),
        )
        for program, c, ev in zip(programs, completions, evaluations, strict=True)
    ]
    return list(zip(children, evaluations, strict=True))


def finish_reason(completion: Completion) -> Finish:
    """Why generation ended. The engines report "stop" for a closing fence and for eos alike; a
    stopped text that closes a fenced block was stopped by the fence, since the engines test
    the fence at every token and cut the text there."""
    if completion.finish_reason in ("fence", "eos", "length"):
        return completion.finish_reason
    return "fence" if closing_fence_end(completion.text) is not None else "eos"
