"""The reference policy: transformers generate for rollouts, PEFT LoRA for the adapter."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from pot.policy.base import Completion, Prompt
from pot.policy.models import load_model
from pot.prompts import closing_fence_end

AdapterState = dict[str, torch.Tensor]


class PromptTooLongError(ValueError):
    """A prompt that leaves no room for new tokens in the model's context."""


class TransformersPolicy:
    """A causal LM with an optional LoRA adapter (attached by the GRPO trainer).

    Without an adapter it samples from the base model; `attach_adapter` wraps the model with
    PEFT, freezes the base weights and stores the seeded initial adapter that `reset` restores.
    """

    engine_name = "transformers"  # who samples the rollouts

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model: PreTrainedModel | PeftModel = model.eval()
        self.tokenizer = tokenizer
        self.version = 0
        self.context_length: int = model.config.max_position_embeddings
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id
        self.pad_token_id: int = pad if pad is not None else tokenizer.eos_token_id
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        self._initial_adapter: AdapterState | None = None

    @classmethod
    def load(
        cls, name: str = "default", *, dtype: torch.dtype = torch.float32, device: str = "cpu"
    ) -> TransformersPolicy:
        return cls(*load_model(name, dtype=dtype, device=device))

    # --- prompts -------------------------------------------------------------------------

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt; a string becomes one user message when there is a template."""
        if self.tokenizer.chat_template is None:
            if not isinstance(prompt, str):
                raise ValueError(
                    "chat messages need a tokenizer with a chat template; pass a plain string"
                )
            return self.tokenizer(prompt).input_ids
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    # --- generation ----------------------------------------------------------------------

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
        """n completions of one prompt, in one batched generate call (prompt processed once).

        `stop_at_fence=False` decodes plain text (math answers, summaries) up to eos. Log-probs
        are recorded during generation at no extra cost, so `logprobs=False` changes nothing.
        """
        sampling = {
            "do_sample": True,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": 0,
            "repetition_penalty": repetition_penalty,
        }
        return self._generate(prompt, n, max_new_tokens, seed, sampling, stop_at_fence)

    def greedy(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 2048,
        stop_at_fence: bool = True,
        logprobs: bool = True,
    ) -> Completion:
        sampling = {"do_sample": False}
        return self._generate(prompt, 1, max_new_tokens, None, sampling, stop_at_fence)[0]

    def _generate(
        self,
        prompt: Prompt,
        n: int,
        max_new_tokens: int,
        seed: int | None,
        sampling: dict,
        stop_at_fence: bool = True,
    ) -> list[Completion]:
        prompt_ids = self.encode_prompt(prompt)
        room = self._room_for(len(prompt_ids), max_new_tokens)
        input_ids = torch.tensor([prompt_ids], device=self.device)
        fence = _ClosingFenceStop(self.tokenizer, batch_size=n, enabled=stop_at_fence)
        recorder = _LogprobRecorder()
        with torch.no_grad(), _seeded(seed, self.device):
            cache = self._shared_prefix_cache(input_ids, n)
            batch = input_ids.expand(n, -1)
            sequences = self.model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                past_key_values=cache,
                max_new_tokens=room,
                logits_processor=LogitsProcessorList([recorder]),
                stopping_criteria=StoppingCriteriaList([fence]),
                pad_token_id=self.pad_token_id,
                **sampling,
            )
        logprobs = recorder.finish(sequences)
        new_tokens = sequences[:, len(prompt_ids) :].tolist()
        return [
            self._completion(ids, logprobs[row].tolist(), fence.stop_lengths[row], len(prompt_ids))
            for row, ids in enumerate(new_tokens)
        ]

    def _shared_prefix_cache(self, input_ids: torch.Tensor, n: int) -> DynamicCache:
        """KV cache of every prompt token but the last, computed once and repeated n times.

        generate then runs only the last prompt token and the new ones for each sequence.
        """
        cache = DynamicCache(config=self.model.config)
        if input_ids.shape[1] > 1:
            self.model(input_ids=input_ids[:, :-1], past_key_values=cache, logits_to_keep=1)
            cache.batch_repeat_interleave(n)
        return cache

    def _completion(
        self, ids: list[int], logprobs: list[float], fence_length: int | None, prompt_tokens: int
    ) -> Completion:
        eos_at = next((i for i, token in enumerate(ids) if token in self.eos_token_ids), None)
        eos_length = None if eos_at is None else eos_at + 1
        stops = [length for length in (fence_length, eos_length) if length is not None]
        length = min(stops, default=len(ids))
        text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
        if fence_length is not None and fence_length == length:
            text = text[: closing_fence_end(text)]
        return Completion(
            text=text,
            token_ids=ids[:length],
            logprobs=logprobs[:length],
            prompt_tokens=prompt_tokens,
            finish_reason="stop" if stops else "length",
        )

    def _room_for(self, prompt_tokens: int, max_new_tokens: int) -> int:
        room = self.context_length - prompt_tokens
        if room <= 0:
            raise PromptTooLongError(
                f"the prompt has {prompt_tokens} tokens and the model's context is "
                f"{self.context_length}; shorten it (build_prompt's max_tokens drops old attempts)"
            )
        return min(max_new_tokens, room)

    # --- log-probs -----------------------------------------------------------------------

    def completion_logprobs(
        self, prompt_ids: list[int], completions: list[list[int]]
    ) -> list[torch.Tensor]:
        """Per-token log-probs of each completion under the current adapter (no grad)."""
        with torch.no_grad():
            logprobs, _ = self.sequence_logprobs(prompt_ids, completions)
        return [logprobs[row, : len(ids)].clone() for row, ids in enumerate(completions)]

    def rollout_logprobs(
        self, prompt_ids: list[int], completions: list[list[int]], wanted: bool
    ) -> list[torch.Tensor]:
        """For engines that sample outside this model: `completion_logprobs`, a forward pass
        over prompt + completions, or empty rows when the caller does not use them."""
        if not wanted:
            return [torch.empty(0)] * len(completions)
        return self.completion_logprobs(prompt_ids, completions)

    def sequence_logprobs(
        self, prompt_ids: list[int], completions: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs [G, T] of right-padded completions after one shared prompt, and their mask.

        Differentiable when called with grad enabled; padded positions hold 0.
        """
        width = max(len(ids) for ids in completions)
        rows = [prompt_ids + ids + [self.pad_token_id] * (width - len(ids)) for ids in completions]
        input_ids = torch.tensor(rows, device=self.device)
        lengths = torch.tensor([len(ids) for ids in completions], device=self.device)
        mask = torch.arange(width, device=self.device)[None, :] < lengths[:, None]
        prompt_mask = torch.ones(len(rows), len(prompt_ids), dtype=torch.bool, device=self.device)
        # logits at positions P-1 .. P+T-2 predict the T completion tokens
        logits = (
            self.model(
                input_ids=input_ids,
                attention_mask=torch.cat([prompt_mask, mask], dim=1).long(),
                logits_to_keep=width + 1,
            )
            .logits[:, :-1]
            .float()
        )
        targets = input_ids[:, len(prompt_ids) :]
        logprobs = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
        return logprobs.masked_fill(~mask, 0.0), mask

    # --- adapter lifecycle ---------------------------------------------------------------

    def attach_adapter(self, lora: LoraConfig, *, seed: int = 0) -> None:
        """Wrap the base model with a fresh LoRA adapter (seeded init); base weights freeze."""
        base = self.model.unload() if isinstance(self.model, PeftModel) else self.model
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # peft calls a transformers method that transformers 5 deprecates: not ours to fix
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            torch.manual_seed(seed)
            self.model = get_peft_model(base, lora).eval()
        self._initial_adapter = self.adapter_state()
        self.version = 0

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [param for param in self.model.parameters() if param.requires_grad]

    def adapter_state(self) -> AdapterState:
        return {
            name: param.detach().clone()
            for name, param in self.model.named_parameters()
            if param.requires_grad
        }

    def load_adapter_state(self, state: AdapterState) -> None:
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                if param.requires_grad:
                    param.copy_(state[name])

    @contextmanager
    def adapter_weights(self, state: AdapterState | None) -> Iterator[None]:
        """Run with other adapter weights (None: the base model), then put the current back."""
        if state is None:
            with self.model.disable_adapter():
                yield
            return
        current = self.adapter_state()
        self.load_adapter_state(state)
        try:
            yield
        finally:
            self.load_adapter_state(current)

    def reset(self) -> None:
        """The initial adapter again (same weights every time), version 0."""
        if self._initial_adapter is not None:
            self.load_adapter_state(self._initial_adapter)
        self.version = 0

    def snapshot(self) -> dict:
        return {"version": self.version, "adapter": self.adapter_state()}

    def restore(self, state: dict) -> None:
        self.load_adapter_state(state["adapter"])
        self.version = state["version"]


class _ClosingFenceStop(StoppingCriteria):
    """Stops each sequence once its new text closes the first ``` fenced block."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, batch_size: int, enabled: bool = True
    ) -> None:
        self.tokenizer = tokenizer
        self.enabled = enabled
        self.texts = [""] * batch_size
        self.stop_lengths: list[int | None] = [None] * batch_size
        self.generated = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        # called once per new token, so decoding only the last one keeps this linear in length
        self.generated += 1
        if not self.enabled:
            return torch.zeros(len(self.texts), dtype=torch.bool, device=input_ids.device)
        for row, token in enumerate(input_ids[:, -1].tolist()):
            if self.stop_lengths[row] is None:
                self.texts[row] += self.tokenizer.decode([token])
                if closing_fence_end(self.texts[row]) is not None:
                    self.stop_lengths[row] = self.generated
        return torch.tensor(
            [length is not None for length in self.stop_lengths], device=input_ids.device
        )


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


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return {token for token in [*ids, tokenizer.eos_token_id] if token is not None}
