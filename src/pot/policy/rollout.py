"""Who samples: what a rollout engine (transformers, llama.cpp, vLLM) is asked and returns.

An engine decodes n rows after one prompt from the learner's current adapter, feeding every
new token to the `StopRule` (pot.policy.fence) and ending each row where the rule stops it.
Turning rows into completions (the text, the log-probs, the finish reason) is the policy's
job (pot.policy.lora_policy), the same for every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pot.policy.fence import StopRule
from pot.policy.learner import Learner


@dataclass(frozen=True)
class Sampling:
    """A seeded draw at `temperature` from the nucleus of mass `top_p`; the repetition penalty
    is transformers' (a seen token's logit divided by it when positive, else multiplied)."""

    temperature: float = 0.7
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None


@dataclass
class Rollouts:
    token_ids: list[list[int]]  # per row, as decoded (tokens after the row's stop are ignored)
    # per row and token: the log-prob under the engine's own (untempered) logits; None when
    # the engine does not report them (the policy then asks the learner)
    logprobs: list[list[float]] | None


class RolloutEngine(Protocol):
    name: str  # "transformers", "llamacpp" or "vllm"

    def generate(
        self,
        learner: Learner,
        prompt_ids: list[int],
        n: int,
        max_new_tokens: int,
        sampling: Sampling | None,  # None: greedy
        stop: StopRule,
    ) -> Rollouts: ...

    def reset(self) -> None:
        """A new problem: forget what the last one left behind (a cached prompt)."""
