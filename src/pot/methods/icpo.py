"""ME-ICPO: minimum-entropy in-context policy optimization (SPEC section 3).

The in-context counterpart of PoT: no weight update. Per problem, two lists of short summaries
(bad ideas, reward 0; good ideas, reward 1) grow by one entry a round. Each round samples k
solutions from "system + question + bad ideas + good ideas", rewards them (math: agreement with
the majority answer; code: the public tests), summarizes each one that answered (code: every
program, with how it failed) and appends the candidate whose summary, put in the context,
makes `entropy_k` new answers least uncertain.

Follows the official code (github.com/UNCSciML/ICPO, src/icrl/icrl_runner.py `choose_entropy`,
`_get_entropy`, `build_prompt`; src/icrl/utility.py prompts; configs/icrl.yaml defaults).
Where it differs: the final answers are 16 (SPEC), not 64; its stray "Explain the concept of
XYZ in detail." is dropped from the system prompt; ties go to the first candidate instead of a
random one; lists keep their newest `max_ideas` entries (the official code evicts by entropy,
which only happens after more than 5 rounds).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pot.budget import Ledger
from pot.policy import Completion, Policy
from pot.prompts import build_prompt
from pot.sandbox import Sandbox
from pot.sandbox.results import Evaluation, Verdict
from pot.search import Tree, expand_evaluated
from pot.tasks import Task
from pot.tasks.math import MathTask, extract_answer, normalize_answer

Message = dict[str, str]

SYSTEM_MATH = (
    "You are an AI mathematician. All content you output MUST be in English.\n"
    "**You are only allowed to provide explanations in plain English. Do NOT write any code, "
    "pseudocode, or technical snippets.** Below are compressed solution ideas from previous "
    "attempts; each idea is tagged with reward 1 (correct) or reward 0 (incorrect). Use the "
    "question and these ideas to deduce the correct answer.\n"
    "**Finish all your reasoning, then on a NEW line output exactly one answer (the answer) and "
    "nothing else.**\nYour final output MUST be in the format \\boxed{<answer>}, where <answer> "
    "is the final answer in any form (number, fraction, expression, or text), without extra "
    "explanation or text."
)
SUMMARY_MATH = (
    "Provide a concise summary of the reasoning in the answer below. Do NOT add any introductory "
    "phrases or extra explanations. Omit all calculations unless essential to understanding. "
    "The summary must be self-contained, no more than 100 tokens.\n\n"
    "If there is a final answer, include it at the end in the format \\boxed{{<answer>}} (any "
    "form is allowed: number, fraction, expression, or text). If there is no final answer, do "
    "not output \\boxed{{}}.\n\n[Answer start]\n{}\n[Answer end]\n\nSummary:"
)
SYSTEM_CODE = (
    "You are an expert Python programmer. Below are compressed solution ideas from previous "
    "attempts; each idea is tagged with reward 1 (passes the public tests) or reward 0 (fails "
    "them). Use the problem and these ideas to write a correct program."
)
SUMMARY_CODE = (
    "Provide a concise summary of the approach of the program below: the algorithm and the key "
    "decisions, not the code. Do NOT add any introductory phrases. The summary must be "
    "self-contained, no more than 100 tokens.\n\n[Program start]\n{}\n[Program end]\n\nSummary:"
)


@dataclass
class ICPOConfig:
    """The official defaults (configs/icrl.yaml; SPEC section 3)."""

    rounds: int = 5  # T
    k: int = 16  # solutions sampled per round
    entropy_k: int = 16  # answers sampled to score one candidate summary
    final_k: int = 16  # answers sampled from the final context (Maj@k, Mean@k)
    temperature: float = 0.6
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    max_new_tokens: int = 5000  # official answer_length
    summary_max_new_tokens: int = 500  # official summary_length; the prompt asks for <= 100
    summary_temperature: float = 0.05
    summary_top_p: float = 0.9
    invalid_penalty: bool = True  # + log2(entropy_k) x the fraction of invalid answers
    max_ideas: int = 5  # entries kept per list (official MAX_KEEP)
    answer_format: str = "boxed"  # math: "boxed", or "last-number" for models that rarely box
    early_stop: bool = True  # code: stop once a program passes every public test


@dataclass
class Ideas:
    bad: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)

    def with_idea(self, summary: str, good: bool, keep: int) -> Ideas:
        """A copy with `summary` appended to its list; each list keeps its newest `keep`."""
        bad, goods = list(self.bad), list(self.good)
        (goods if good else bad).append(summary)
        return Ideas(bad[-keep:], goods[-keep:])


@dataclass
class Attempt:
    text: str  # the completion
    answer: str | None  # its class for votes and entropy; None: invalid
    reward: float = 0.0
    verdict: str = ""  # code: how the program ended on the public tests


@dataclass
class Candidate:
    sample: int  # index of the attempt in its round
    summary: str
    good: bool
    entropy: float | None = None
    probe_answers: list[str | None] = field(default_factory=list)


# --- the pieces, each checked against hand-computed cases in tests/test_icpo.py ---------------


def user_text(question: str, ideas: Ideas) -> str:
    """The official layout: question, bad ideas (reward 0), good ideas (reward 1)."""
    lines = [question.strip(), "", "bad ideas (reward 0):"]
    lines += [f"[{i}]- {summary}" for i, summary in enumerate(ideas.bad)]
    lines += ["", "good ideas (reward 1):"]
    lines += [f"[{i}]- {summary}" for i, summary in enumerate(ideas.good)]
    return "\n".join(lines).rstrip()


def icpo_prompt(system: str, question: str, ideas: Ideas) -> list[Message]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user_text(question, ideas)},
    ]


def majority(answers: Sequence[str | None]) -> str | None:
    """Most frequent valid answer; among equals the first one sampled; None if none is valid."""
    counts = Counter(answer for answer in answers if answer is not None)
    return counts.most_common(1)[0][0] if counts else None


def answer_entropy(answers: Sequence[str | None], invalid_penalty: bool = True) -> float:
    """Shannon entropy (bits) of the valid answers + log2(n) x the invalid fraction.

    With no valid answer at all: 5 log2(n), as the official code.
    """
    n = len(answers)
    if n == 0:
        return math.inf
    valid = [answer for answer in answers if answer is not None]
    weight = math.log2(n)
    if not valid:
        return 5 * weight
    entropy = -sum(c / len(valid) * math.log2(c / len(valid)) for c in Counter(valid).values())
    return entropy + (weight * (n - len(valid)) / n if invalid_penalty else 0.0)


def min_entropy(entropies: Sequence[float]) -> int:
    """Index of the smallest entropy; the first candidate wins ties."""
    return min(range(len(entropies)), key=lambda i: (entropies[i], i))


def generations(config: ICPOConfig) -> int:
    """Generations of a full run when every sample is valid (the upper bound):
    T (k samples + k summaries + k x entropy_k probes) + final_k."""
    return config.rounds * (2 * config.k + config.k * config.entropy_k) + config.final_k


# --- the loop, shared by math and code ---------------------------------------------------------


class Arena(Protocol):
    """What differs between math and code: the texts, how attempts are judged and rewarded."""

    system: str
    question: str
    summary_template: str
    round: int  # set by `optimize`: the round being played, rounds + 1 for the final answers

    def judge(self, completions: list[Completion]) -> list[Attempt]: ...

    def worth_summarizing(self, attempt: Attempt) -> bool: ...

    def summary_tail(self, attempt: Attempt) -> str: ...

    def done(self) -> bool: ...


@dataclass
class Sampler:
    policy: Policy
    ledger: Ledger
    config: ICPOConfig
    seed: int
    stop_at_fence: bool
    calls: int = 0

    def answers(self, prompt: list[Message], n: int) -> list[Completion]:
        c = self.config
        return self._sample(prompt, n, c.temperature, c.top_p, c.max_new_tokens, self.stop_at_fence)

    def summary(self, source: str, template: str) -> str:
        c = self.config
        prompt = [{"role": "user", "content": template.format(source.strip())}]
        completions = self._sample(
            prompt, 1, c.summary_temperature, c.summary_top_p, c.summary_max_new_tokens, False
        )
        return completions[0].text.strip() if completions else ""

    def _sample(
        self,
        prompt: list[Message],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        stop_at_fence: bool,
    ) -> list[Completion]:
        self.calls += 1
        return self.ledger.sample(
            self.policy,
            prompt,
            n,
            temperature=temperature,
            top_p=top_p,
            repetition_penalty=self.config.repetition_penalty,
            max_new_tokens=max_new_tokens,
            seed=self.seed * 1_000_003 + self.calls,
            stop_at_fence=stop_at_fence,
            logprobs=False,
        )


def optimize(arena: Arena, sampler: Sampler, config: ICPOConfig) -> tuple[list[Attempt], dict]:
    """T rounds of in-context optimization, then final_k answers from the final context."""
    ideas, rounds = Ideas(), []
    for round_ in range(1, config.rounds + 1):
        if arena.done() or sampler.ledger.exhausted():
            break
        arena.round = round_
        prompt = icpo_prompt(arena.system, arena.question, ideas)
        attempts = arena.judge(sampler.answers(prompt, config.k))
        if not attempts:
            break
        candidates = summarize(arena, sampler, attempts)
        chosen = choose(arena, sampler, config, ideas, candidates)
        if chosen is not None:
            ideas = ideas.with_idea(chosen.summary, chosen.good, config.max_ideas)
        rounds.append(
            {
                "round": round_,
                "prompt": prompt[-1]["content"],
                "answers": [a.answer for a in attempts],
                "rewards": [a.reward for a in attempts],
                "candidates": [vars(c) for c in candidates],
                "selected": None if chosen is None else chosen.sample,
            }
        )
    arena.round = config.rounds + 1
    final_prompt = icpo_prompt(arena.system, arena.question, ideas)
    final = [] if arena.done() else arena.judge(sampler.answers(final_prompt, config.final_k))
    trace = {
        "rounds": rounds,
        "final_prompt": final_prompt[-1]["content"],
        "final_answers": [a.answer for a in final],
        "ideas": vars(ideas),
    }
    return final, trace


def summarize(arena: Arena, sampler: Sampler, attempts: list[Attempt]) -> list[Candidate]:
    """A summary, ending with the attempt's answer, of every valid attempt."""
    candidates = []
    for index, attempt in enumerate(attempts):
        if not arena.worth_summarizing(attempt) or arena.done():
            continue
        summary = sampler.summary(attempt.text, arena.summary_template)
        if summary:
            candidates.append(
                Candidate(index, f"{summary}\n{arena.summary_tail(attempt)}", attempt.reward >= 1)
            )
    return candidates


def choose(
    arena: Arena, sampler: Sampler, config: ICPOConfig, ideas: Ideas, candidates: list[Candidate]
) -> Candidate | None:
    """The candidate whose summary in the context gives the least uncertain answers."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    for candidate in candidates:
        if arena.done():
            return None
        trial = ideas.with_idea(candidate.summary, candidate.good, config.max_ideas)
        probes = arena.judge(
            sampler.answers(icpo_prompt(arena.system, arena.question, trial), config.entropy_k)
        )
        candidate.probe_answers = [a.answer for a in probes]
        candidate.entropy = answer_entropy(candidate.probe_answers, config.invalid_penalty)
    return candidates[min_entropy([c.entropy for c in candidates])]


# --- math: majority-vote self-rewards ----------------------------------------------------------


class MathArena:
    summary_template = SUMMARY_MATH

    def __init__(self, task: MathTask, answer_format: str = "boxed") -> None:
        self.system, self.question, self.answer_format = SYSTEM_MATH, task.question, answer_format
        self.round = 0

    def judge(self, completions: list[Completion]) -> list[Attempt]:
        """Answers normalized; reward 1 for agreeing with the majority of the group."""
        answers = [math_key(c.text, self.answer_format) for c in completions]
        label = majority(answers)
        return [
            Attempt(c.text, a, float(a is not None and a == label))
            for c, a in zip(completions, answers, strict=True)
        ]

    def worth_summarizing(self, attempt: Attempt) -> bool:
        """The official rule: only attempts that reached an answer become ideas."""
        return attempt.answer is not None

    def summary_tail(self, attempt: Attempt) -> str:
        return f"Thus, the answer is \\boxed{{{attempt.answer}}}"

    def done(self) -> bool:
        return False


def math_key(text: str, answer_format: str = "boxed") -> str | None:
    answer = extract_answer(text, answer_format)
    return None if answer is None else normalize_answer(answer)


def run_math(
    task: MathTask, policy: Policy, ledger: Ledger, config: ICPOConfig, seed: int = 0
) -> tuple[list[str | None], dict]:
    """The final answers (normalized keys) and the trace; score them with Maj@k / Mean@k."""
    sampler = Sampler(policy, ledger, config, seed, stop_at_fence=False)
    final, trace = optimize(MathArena(task, config.answer_format), sampler, config)
    return [a.answer for a in final], trace


# --- code: public-test rewards -----------------------------------------------------------------


class ICPOTree(Tree):
    """Every program ICPO wrote (children of the root), plus the rounds of the optimization."""

    def __init__(self) -> None:
        super().__init__()
        self.icpo: dict = {}

    def to_dict(self) -> dict:
        return {**super().to_dict(), "icpo": self.icpo}


class CodeArena:
    summary_template = SUMMARY_CODE

    def __init__(
        self,
        task: Task,
        sandbox: Sandbox,
        ledger: Ledger,
        policy: Policy,
        tree: ICPOTree,
        early_stop: bool,
    ) -> None:
        self.system, self.question = SYSTEM_CODE, build_prompt(task, [])[0]["content"]
        self.task, self.sandbox, self.ledger, self.policy = task, sandbox, ledger, policy
        self.tree, self.early_stop, self.round = tree, early_stop, 0

    def judge(self, completions: list[Completion]) -> list[Attempt]:
        """Each program run on the public tests; its answer is its behaviour on them."""
        evaluated = expand_evaluated(
            self.tree,
            self.tree.root,
            self.task,
            self.sandbox,
            self.ledger,
            completions,
            "sampled",
            self.policy,
            self.round,
        )
        return [
            Attempt(node.program, behaviour(ev), ev.reward, ev.verdict.value)
            for node, ev in evaluated
        ]

    def worth_summarizing(self, attempt: Attempt) -> bool:
        """Every program: one that crashes is a bad idea with a reward too, and with a small
        model most do, so keeping only programs that ran would leave the lists empty."""
        return bool(attempt.text.strip())

    def summary_tail(self, attempt: Attempt) -> str:
        outcome = "" if attempt.reward >= 1 else f" ({attempt.verdict.replace('_', ' ')})"
        return f"Public-test reward of this program: {attempt.reward:.2f}{outcome}"

    def done(self) -> bool:
        solved = self.early_stop and any(n.reward >= 1.0 for n in self.tree.nodes[1:])
        return solved or self.ledger.exhausted()


def behaviour(evaluation: Evaluation) -> str | None:
    """What a program did on each public test (pass, or the wrong output it gave); None when it
    never ran to an answer (syntax error, crash, time-out on every test)."""
    answered = (Verdict.PASS, Verdict.WRONG_ANSWER)
    if not any(r.verdict in answered for r in evaluation.results):
        return None
    parts = []
    for r in evaluation.results:
        wrong = r.output or (r.error.strip().splitlines() or [""])[-1]
        parts.append("pass" if r.verdict is Verdict.PASS else f"{r.verdict.value}:{wrong}")
    return " | ".join(parts)


def run(
    task: Task, policy: Policy, sandbox: Sandbox, ledger: Ledger, config: ICPOConfig, seed: int = 0
) -> Tree:
    """The code variant: rewards from the public tests; the answer (picked by `solve`) is the
    program with the best public reward."""
    tree = ICPOTree()
    sampler = Sampler(policy, ledger, config, seed, stop_at_fence=True)
    arena = CodeArena(task, sandbox, ledger, policy, tree, config.early_stop)
    _, tree.icpo = optimize(arena, sampler, config)
    return tree
