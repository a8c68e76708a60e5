"""Monte Carlo tree search over complete programs, with PUCT selection (SPEC section 2).

A node is one program ("code thought"); its state is the problem plus the (program, feedback)
pairs on the path from the root. A child is evaluated when created, so it starts with N = 1,
W = R. Priors are a softmax over siblings of each one's mean token log-probability.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pot.prompts import Attempt, build_prompt, extract_code

if TYPE_CHECKING:
    from collections.abc import Callable

    from pot.budget import Ledger
    from pot.evolve.grpo import GRPOTrainer
    from pot.policy import Completion, Policy
    from pot.sandbox import Sandbox
    from pot.sandbox.results import Evaluation
    from pot.tasks import Task

Creator = Literal["root", "sampled", "committed"]


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
        return {"kind": "tree", "nodes": [asdict(n) for n in self.nodes]}


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
        leaf = tree.select(config.c_puct, config.max_depth)
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
        if trainer is not None and len(children) > 1 and not _done(tree, ledger, config):
            ledger.update(trainer, prompt, completions, [c.reward for c in children])
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
            policy_version=policy.version,
            simulation=simulation,
            created_s=ledger.elapsed(),
        )
        for program, c, ev in zip(programs, completions, evaluations, strict=True)
    ]
    return list(zip(children, evaluations, strict=True))
