"""The policy: who learns (a `Learner`, the PEFT model and its adapter) composed with who
samples (a rollout engine: transformers generate, llama.cpp or vLLM).

Every engine decodes from the learner's current adapter and stops rows by the same `StopRule`;
the completions (text cut at the closing fence, finish reason, log-probs) are built here, once.
Log-probs come from the engine's own logits where it reports them, else from the learner (a
no-grad forward), which is skipped when the caller does not want them.
"""

from __future__ import annotations

import torch

from pot.policy.base import Completion, Prompt
from pot.policy.fence import StopRule
from pot.policy.learner import Learner
from pot.policy.rollout import RolloutEngine, Rollouts, Sampling
from pot.policy.transformers_engine import TransformersEngine
from pot.prompts import closing_fence_end


class LoraPolicy:
    """A learner and the engine that samples from it (default: transformers generate).

    `version` counts the applied adapter updates (the GRPO trainer adds them); `reset` and
    `restore` bring the adapter, the version and the engine's state back together.
    """

    def __init__(self, learner: Learner, engine: RolloutEngine | None = None) -> None:
        self.learner = learner
        self.engine = engine or TransformersEngine()
        self.version = 0

    @property
    def context_length(self) -> int:
        return self.learner.context_length

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        return self.learner.encode_prompt(prompt)

    def count_tokens(self, text: str) -> int:
        return self.learner.count_tokens(text)

    def completion_logprobs(
        self, prompt_ids: list[int], completions: list[list[int]]
    ) -> list[torch.Tensor]:
        return self.learner.completion_logprobs(prompt_ids, completions)

    # --- rollouts ------------------------------------------------------------------------

    def sample(
        self,
        prompt: Prompt,
        n: int,
        *,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 2048,
        seed: int | None = None,
        stop_at_fence: bool = True,
        repetition_penalty: float = 1.0,
        logprobs: bool = True,
    ) -> list[Completion]:
        """n completions of one prompt, decoded together after one pass over the prompt.

        `stop_at_fence=False` decodes plain text (math answers, summaries) up to eos.
        `logprobs=False`: the caller does not use them, so an engine without its own skips the
        learner's pass and returns empty rows.
        """
        sampling = Sampling(temperature, top_p, repetition_penalty, seed)
        return self._rollout(prompt, n, max_new_tokens, sampling, stop_at_fence, logprobs)

    def greedy(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 2048,
        stop_at_fence: bool = True,
        logprobs: bool = True,
    ) -> Completion:
        return self._rollout(prompt, 1, max_new_tokens, None, stop_at_fence, logprobs)[0]

    def _rollout(
        self,
        prompt: Prompt,
        n: int,
        max_new_tokens: int,
        sampling: Sampling | None,
        stop_at_fence: bool,
        want_logprobs: bool,
    ) -> list[Completion]:
        learner = self.learner
        prompt_ids = learner.encode_prompt(prompt)
        room = learner.room_for(len(prompt_ids), max_new_tokens)
        stop = StopRule(learner.tokenizer, learner.eos_token_ids, n, fence=stop_at_fence)
        rollouts = self.engine.generate(learner, prompt_ids, n, room, sampling, stop)
        kept = [stop.kept(row, ids) for row, ids in enumerate(rollouts.token_ids)]
        logprobs = self._logprobs(prompt_ids, kept, rollouts, want_logprobs)
        return [
            self._completion(stop, row, ids, row_logprobs, len(prompt_ids))
            for row, (ids, row_logprobs) in enumerate(zip(kept, logprobs, strict=True))
        ]

    def _logprobs(
        self, prompt_ids: list[int], kept: list[list[int]], rollouts: Rollouts, wanted: bool
    ) -> list[list[float]]:
        if rollouts.logprobs is not None:
            return [row[: len(ids)] for row, ids in zip(rollouts.logprobs, kept, strict=True)]
        if not wanted:
            return [[] for _ in kept]
        return [row.tolist() for row in self.learner.completion_logprobs(prompt_ids, kept)]

    def _completion(
        self, stop: StopRule, row: int, ids: list[int], logprobs: list[float], prompt_tokens: int
    ) -> Completion:
        text = self.learner.tokenizer.decode(ids, skip_special_tokens=True)
        if stop.at_fence[row]:
            text = text[: closing_fence_end(text)]
        return Completion(
            text=text,
            token_ids=ids,
            logprobs=logprobs,
            prompt_tokens=prompt_tokens,
            finish_reason="stop" if stop.stopped(row) else "length",
        )

    # --- adapter lifecycle ---------------------------------------------------------------

    def reset(self) -> None:
        """A new problem: the initial adapter (same weights every time), version 0, and an
        engine that remembers nothing of the last problem (a warm prompt cache can flip a
        near-tie token, so a resumed or Ray run would otherwise differ from a serial one)."""
        self.learner.reset_adapter()
        self.version = 0
        self.engine.reset()

    def snapshot(self) -> dict:
        return {"version": self.version, "adapter": self.learner.adapter_state()}

    def restore(self, state: dict) -> None:
        self.learner.load_adapter_state(state["adapter"])
        self.version = state["version"]
