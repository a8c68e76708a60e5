"""Math at matched generations: single answer, majority vote, ME-ICPO and TTRL-style GRPO.

All four see the same prompt (ME-ICPO's system prompt with empty idea lists) and sample with
the same settings. ME-ICPO's nominal generation count G = T (2k + k entropy_k) + final_k sets
the others' budget: majority vote draws G answers; TTRL makes (G - final_k) / k GRPO updates
of a fresh LoRA adapter on groups of k answers rewarded by agreeing with the group's majority
(TTRL's label-free reward), then draws final_k answers from the evolved policy.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pot.budget import Budget, Costs, Ledger
from pot.evolve.grpo import GRPOConfig, GRPOTrainer
from pot.methods import icpo
from pot.methods.icpo import ICPOConfig, Ideas, icpo_prompt, majority, math_key
from pot.policy import Policy
from pot.tasks.math import MathTask, answers_equal

Answers = list[str | None]


@dataclass
class MathConfig:
    icpo: ICPOConfig = field(default_factory=ICPOConfig)  # also the shared sampling settings
    grpo: GRPOConfig = field(default_factory=GRPOConfig)


@dataclass
class MathResult:
    task_id: str
    method: str
    seed: int
    reference: str
    answer: str | None  # the majority of `answers` (the answer itself for a single one)
    correct: bool  # Maj@k: the majority answer equals the reference
    mean_correct: float  # Mean@k: fraction of `answers` equal to the reference
    answers: Answers
    costs: Costs
    trace: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def budget_of(config: MathConfig) -> int:
    """ME-ICPO's nominal generations per question, given to every sampling baseline."""
    return icpo.generations(config.icpo)


def run_single(
    task: MathTask, policy: Policy, ledger: Ledger, config: MathConfig, seed: int
) -> tuple[Answers, dict]:
    """One greedy answer."""
    prompt = icpo_prompt(icpo.SYSTEM_MATH, task.question, Ideas())
    completions = ledger.sample(
        policy,
        prompt,
        1,
        greedy=True,
        stop_at_fence=False,
        max_new_tokens=config.icpo.max_new_tokens,
        logprobs=False,
    )
    texts = [c.text for c in completions]
    return [math_key(text, config.icpo.answer_format) for text in texts], {"texts": texts}


def run_majority(
    task: MathTask, policy: Policy, ledger: Ledger, config: MathConfig, seed: int
) -> tuple[Answers, dict]:
    """Self-consistency: G sampled answers, in batches of k."""
    prompt = icpo_prompt(icpo.SYSTEM_MATH, task.question, Ideas())
    answers: Answers = []
    total, batch = budget_of(config), 0
    while len(answers) < total:
        completions = sample(
            policy,
            ledger,
            prompt,
            min(config.icpo.k, total - len(answers)),
            config.icpo,
            seed * 1_000_003 + batch,
        )
        if not completions:
            break
        answers += [math_key(c.text, config.icpo.answer_format) for c in completions]
        batch += 1
    return answers, {}


def run_ttrl(
    task: MathTask, policy: Policy, ledger: Ledger, config: MathConfig, seed: int
) -> tuple[Answers, dict]:
    """Test-time GRPO on a fresh adapter with the majority-vote reward, then final_k answers."""
    c = config.icpo
    trainer = GRPOTrainer(policy, config.grpo)
    prompt = icpo_prompt(icpo.SYSTEM_MATH, task.question, Ideas())
    updates = []
    for step in range((budget_of(config) - c.final_k) // c.k):
        completions = sample(policy, ledger, prompt, c.k, c, seed * 1_000_003 + step)
        if not completions:
            break
        answers = [math_key(x.text, c.answer_format) for x in completions]
        label = majority(answers)
        rewards = [float(a is not None and a == label) for a in answers]
        stats = ledger.update(trainer, prompt, completions, rewards)
        updates.append(
            {
                "answers": answers,
                "label": label,
                "skipped": stats.skipped,
                "loss": stats.loss,
                "kl": stats.kl,
            }
        )
    final = sample(policy, ledger, prompt, c.final_k, c, seed * 1_000_003 + len(updates))
    return [math_key(x.text, c.answer_format) for x in final], {"updates": updates}


def run_icpo(
    task: MathTask, policy: Policy, ledger: Ledger, config: MathConfig, seed: int
) -> tuple[Answers, dict]:
    return icpo.run_math(task, policy, ledger, config.icpo, seed)


def sample(policy: Policy, ledger: Ledger, prompt: list, n: int, c: ICPOConfig, seed: int) -> list:
    return ledger.sample(
        policy,
        prompt,
        n,
        temperature=c.temperature,
        top_p=c.top_p,
        repetition_penalty=c.repetition_penalty,
        stop_at_fence=False,
        max_new_tokens=c.max_new_tokens,
        seed=seed,
        logprobs=False,
    )


MATH_METHODS: dict[str, Callable[..., tuple[Answers, dict]]] = {
    "single": run_single,
    "majority": run_majority,
    "me-icpo": run_icpo,
    "ttrl": run_ttrl,
}


def solve_math(
    task: MathTask,
    policy: Policy,
    method: str,
    config: MathConfig | None = None,
    *,
    seed: int = 0,
    budget: Budget | None = None,
) -> MathResult:
    if method not in MATH_METHODS:
        raise ValueError(f"unknown math method {method!r}: choose from {', '.join(MATH_METHODS)}")
    config = config or MathConfig()
    random.seed(seed)
    torch.manual_seed(seed)
    policy.reset()
    ledger = Ledger(budget or Budget())
    answers, trace = MATH_METHODS[method](task, policy, ledger, config, seed)
    answer = majority(answers)
    return MathResult(
        task_id=task.id,
        method=method,
        seed=seed,
        reference=task.answer,
        answer=answer,
        correct=answers_equal(answer, task.answer),
        mean_correct=sum(answers_equal(a, task.answer) for a in answers) / max(len(answers), 1),
        answers=answers,
        costs=ledger.finish(),
        trace=trace,
    )


def summary_rows(records: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Per method: accuracy (Maj), Mean@k, and generations, tokens and seconds per question."""
    rows = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        if not mine:
            continue
        n = len(mine)
        rows.append(
            {
                "method": method,
                "questions": n,
                "accuracy": sum(r["correct"] for r in mine) / n,
                "mean_at_k": sum(r["mean_correct"] for r in mine) / n,
                "generations": sum(r["costs"]["programs"] for r in mine) / n,
                "tokens": sum(r["costs"]["generated_tokens"] for r in mine) / n,
                "seconds": sum(r["costs"]["wall_s"] for r in mine) / n,
            }
        )
    return rows
