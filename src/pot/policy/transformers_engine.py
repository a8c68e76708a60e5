"""The reference rollout engine: transformers generate on the learner's own model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from pot.policy.fence import StopRule
from pot.policy.learner import Learner
from pot.policy.rollout import Rollouts, Sampling


class TransformersEngine:
    """n rows in one batched generate call, the prompt processed once; the log-probs are
    recorded during generation at no extra cost."""

    name = "transformers"

    def generate(
        self,
        learner: Learner,
        prompt_ids: list[int],
        n: int,
        max_new_tokens: int,
        sampling: Sampling | None,
        stop: StopRule,
    ) -> Rollouts:
        input_ids = torch.tensor([prompt_ids], device=learner.device)
        recorder = _LogprobRecorder()
        seed = sampling.seed if sampling else None
        with torch.no_grad(), _seeded(seed, learner.device):
            cache = _shared_prefix_cache(learner, input_ids, n)
            batch = input_ids.expand(n, -1)
            sequences = learner.model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                past_key_values=cache,
                max_new_tokens=max_new_tokens,
                logits_processor=LogitsProcessorList([recorder]),
                stopping_criteria=StoppingCriteriaList([_StopCriterion(stop)]),
                pad_token_id=learner.pad_token_id,
                **_generate_options(sampling),
            )
        return Rollouts(
            token_ids=sequences[:, len(prompt_ids) :].tolist(),
            logprobs=recorder.finish(sequences).tolist(),
        )

    def reset(self) -> None:
        """Nothing carries over between problems."""


def _generate_options(sampling: Sampling | None) -> dict:
    if sampling is None:
        return {"do_sample": False}
    return {
        "do_sample": True,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": 0,
        "repetition_penalty": sampling.repetition_penalty,
    }


def _shared_prefix_cache(learner: Learner, input_ids: torch.Tensor, n: int) -> DynamicCache:
    """KV cache of every prompt token but the last, computed once and repeated n times.

    generate then runs only the last prompt token and the new ones for each sequence.
    """
    cache = DynamicCache(config=learner.model.config)
    if input_ids.shape[1] > 1:
        learner.model(input_ids=input_ids[:, :-1], past_key_values=cache, logits_to_keep=1)
        cache.batch_repeat_interleave(n)
    return cache


class _StopCriterion(StoppingCriteria):
    """The stop rule as generate asks it: which rows are done after each new token."""

    def __init__(self, stop: StopRule) -> None:
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        # called once per new token: every running row gets its newest token
        for row, token in enumerate(input_ids[:, -1].tolist()):
            if not self.stop.stopped(row):
                self.stop.add(row, token)
        done = [self.stop.stopped(row) for row in range(input_ids.shape[0])]
        return torch.tensor(done, device=input_ids.device)


class _LogprobRecorder(LogitsProcessor):
    """Log-prob of each sampled token under the model's own distribution.

    Custom processors run before temperature and top-p, so these are untempered log-probs.
    The token chosen at step t is only known at step t + 1 (or at the end).
    """

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self.last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.last is not None:
            self.steps.append(self.last.gather(1, input_ids[:, -1:]))
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        self.steps.append(self.last.gather(1, sequences[:, -1:]))
        return torch.cat(self.steps, dim=1)


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
