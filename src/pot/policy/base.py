"""What every search method needs from a policy: sampled programs with their log-probs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

Prompt = str | list[dict[str, str]]
FinishReason = Literal["stop", "length"]


@dataclass
class Completion:
    text: str  # decoded; cut right after the closing ``` fence when generation stopped there
    token_ids: list[int]  # the generated tokens (the eos token included when it ended the text)
    logprobs: list[float]  # per-token log-probs under the (untempered) policy that sampled it;
    # empty when the caller passed logprobs=False to an engine that needs a forward pass for them
    prompt_tokens: int
    finish_reason: FinishReason  # "stop": closing fence or eos; "length": max_new_tokens

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / max(len(self.logprobs), 1)


class Policy(Protocol):
    version: int  # adapter version: 0 after reset, +1 per applied update
    context_length: int  # prompt + completion tokens the model accepts

    def sample(
        self,
        prompt: Prompt,
        n: int,
        *,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 2048,
        seed: int | None = None,
        stop_at_fence: bool = True,  # False: plain text (math, summaries) decoded up to eos
        repetition_penalty: float = 1.0,
        logprobs: bool = True,  # False: not needed (only search priors use them), maybe skipped
    ) -> list[Completion]: ...

    def greedy(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 2048,
        stop_at_fence: bool = True,
        logprobs: bool = True,
    ) -> Completion: ...

    def completion_logprobs(
        self, prompt_ids: list[int], completions: list[list[int]]
    ) -> list[torch.Tensor]: ...

    def encode_prompt(self, prompt: Prompt) -> list[int]: ...

    def count_tokens(self, text: str) -> int: ...

    def reset(self) -> None: ...

    def snapshot(self) -> dict: ...

    def restore(self, state: dict) -> None: ...
