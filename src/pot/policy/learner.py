"""The reference policy: transformers generate for rollouts, PEFT LoRA for the adapter."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
from transformers.modeling_layers import GradientCheckpointingLayer

from pot.policy.base import Completion, Prompt
from pot.policy.fence import FenceStop
from pot.policy.models import load_model
from pot.prompts import closing_fence_end

AdapterState = dict[str, torch.Tensor]


@dataclass
class PromptState:
    """A prompt run once: keys/values [1, heads, P, dim] per layer, the log-probs [V] of the
    token after it, and its length."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    first_logprobs: torch.Tensor
    length: int

    def tensors(self) -> list[torch.Tensor]:
        return [self.first_logprobs] + [tensor for pair in self.layers for tensor in pair]

    def detached(self) -> PromptState:
        """Leaf copies that collect the gradient of every pass run on them, so several
        micro-batches can backward into one prompt pass (`backward_from`)."""

        def leaf(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.detach().requires_grad_(tensor.requires_grad)

        return PromptState(
            layers=[(leaf(keys), leaf(values)) for keys, values in self.layers],
            first_logprobs=leaf(self.first_logprobs),
            length=self.length,
        )

    def backward_from(self, leaves: PromptState) -> None:
        """Carry the gradient that `leaves` collected back through this prompt pass."""
        pairs = [
            (tensor, leaf.grad)
            for tensor, leaf in zip(self.tensors(), leaves.tensors(), strict=True)
            if leaf.grad is not None
        ]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])


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
        self.checkpointing = False  # enable_gradient_checkpointing
        # the log-prob code applies lm_head to hidden states, as these models' heads do
        config = model.config
        self._plain_head = (
            getattr(config, "final_logit_softcapping", None) is None
            and getattr(config, "logit_scale", None) is None
        )

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
        return self.sequence_logprobs_each([prompt_ids] * len(completions), completions)

    def sequence_logprobs_each(
        self, prompts_ids: list[list[int]], completions: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-sequence computation: each row is its own prompt + completion, one batched
        pass over the right-padded rows; the vocabulary projection runs at completion positions
        only. Returns log-probs [G, T] (0 at padding) and their mask."""
        lengths = [len(ids) for ids in completions]
        mask = self._completion_mask(lengths)
        rows = [prompt + ids for prompt, ids in zip(prompts_ids, completions, strict=True)]
        width = max(len(row) for row in rows)
        input_ids = torch.tensor(
            [row + [self.pad_token_id] * (width - len(row)) for row in rows], device=self.device
        )
        attention = (
            torch.arange(width, device=self.device)[None, :]
            < torch.tensor([len(row) for row in rows], device=self.device)[:, None]
        )
        hidden = self._decoder()(
            input_ids=input_ids, attention_mask=attention.long(), use_cache=False
        )
        # hidden state at position P-1+t predicts completion token t
        row_index = torch.repeat_interleave(
            torch.arange(len(rows), device=self.device), torch.tensor(lengths, device=self.device)
        )
        positions = torch.tensor(
            [
                len(prompt) - 1 + t
                for prompt, n in zip(prompts_ids, lengths, strict=True)
                for t in range(n)
            ],
            device=self.device,
            dtype=torch.long,
        )
        states = hidden.last_hidden_state[row_index, positions]
        targets = input_ids[row_index, positions + 1]
        logprobs = self.token_logprobs(states, targets)
        zeros = torch.zeros(mask.shape, dtype=logprobs.dtype, device=self.device)
        return zeros.masked_scatter(mask, logprobs), mask

    def prompt_pass(self, prompt_ids: list[int]) -> PromptState:
        """Run the prompt once: its keys/values per layer and the log-probs [V] of the first
        completion token. With grad enabled the gradient reaches the adapter through both."""
        cache = DynamicCache(config=self.model.config)
        # the cache goes 4th by position: `past_key_values` before transformers 5.2x, `cache` after
        hidden = self._decoder()(
            torch.tensor([prompt_ids], device=self.device), None, None, cache, use_cache=True
        ).last_hidden_state
        first = self.token_logprobs(hidden[0, -1:], None)[0]
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        return PromptState(layers=layers, first_logprobs=first, length=len(prompt_ids))

    def completion_pass(
        self, prompt: PromptState, completions: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs [G, T] and mask of completions continuing `prompt`, batched on its
        keys/values: the prompt is not run again. Equal to `sequence_logprobs` up to rounding."""
        lengths = [len(ids) for ids in completions]
        mask = self._completion_mask(lengths)
        width = mask.shape[1]
        first_targets = torch.tensor([ids[0] if ids else 0 for ids in completions])
        first = prompt.first_logprobs[first_targets.to(self.device)]
        if width <= 1:
            return first[:, None].masked_fill(~mask, 0.0), mask
        # inputs: every completion token but the last; right padding is never attended by a
        # real token (causal attention), so no attention mask is needed
        pad = [self.pad_token_id]
        inputs = [ids[:-1] + pad * (width - max(len(ids), 1)) for ids in completions]
        targets = [ids[1:] + pad * (width - max(len(ids), 1)) for ids in completions]
        cache = DynamicCache(config=self.model.config)
        for index, (keys, values) in enumerate(prompt.layers):
            shape = (len(completions), *keys.shape[1:])
            cache.update(keys.expand(shape), values.expand(shape), index)
        hidden = self._decoder()(
            torch.tensor(inputs, device=self.device), None, None, cache, use_cache=True
        ).last_hidden_state
        inner = mask[:, 1:]
        logprobs = self.token_logprobs(
            hidden[inner], torch.tensor(targets, device=self.device)[inner]
        )
        rest = torch.zeros(inner.shape, dtype=logprobs.dtype, device=self.device)
        rest = rest.masked_scatter(inner, logprobs)
        return torch.cat([first[:, None], rest], dim=1).masked_fill(~mask, 0.0), mask

    def token_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """log softmax(lm_head(hidden)) [N] at `targets` [N] (None: the whole rows [N, V]).

        The projection and the log-softmax run in float32 outside any autocast region: bf16
        logits would be off by ~0.1 nats, as much as one PPO step moves them.
        """
        if not self._plain_head:
            raise ValueError(
                "this model post-processes its logits (soft-capping or scaling); the log-prob "
                "code applies lm_head only: use a model whose logits are lm_head(hidden)"
            )
        head = self.model.get_output_embeddings()
        with torch.autocast(self.device.type, enabled=False):
            logits = head(hidden.to(head.weight.dtype))
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp64 stays fp64
        if targets is None:
            return logits.log_softmax(-1)
        return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)

    def _completion_mask(self, lengths: list[int]) -> torch.Tensor:
        width = max(lengths, default=0)
        return (
            torch.arange(width, device=self.device)[None, :]
            < torch.tensor(lengths, device=self.device)[:, None]
        )

    def _decoder(self) -> torch.nn.Module:
        """The transformer body under the LM head (LoRA layers included): hidden states."""
        base = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        return getattr(base, base.base_model_prefix)

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

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each decoder layer's activations during backward instead of keeping them.

        transformers checkpoints a layer only while it is in training mode and then drops its
        KV cache, so `checkpointed` switches just the layer modules (their dropouts stay in eval
        mode) and only cache-free passes (`sequence_logprobs_each`) can use it.
        """
        base = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        options = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
        self.checkpointing = True

    @contextmanager
    def checkpointed(self) -> Iterator[None]:
        """Gradient checkpointing active for the passes inside (when it is enabled)."""
        layers = [m for m in self.model.modules() if isinstance(m, GradientCheckpointingLayer)]
        for layer in layers:
            layer.training = self.checkpointing
        try:
            yield
        finally:
            for layer in layers:
                layer.training = False

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [param for param in self.model.parameters() if param.requires_grad]

    def adapter_is_identity(self) -> bool:
        """True while every LoRA B matrix is zero: the adapted model is exactly the base."""
        return all(
            not param.any()
            for name, param in self.model.named_parameters()
            if param.requires_grad and "lora_B" in name
        )

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
        self.fence = FenceStop(tokenizer, batch_size)
        self.enabled = enabled
        self.stop_lengths = self.fence.lengths  # per row: tokens up to its closing fence

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        # called once per new token: every unfinished row gets its newest token
        if self.enabled:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                if self.stop_lengths[row] is None:
                    self.fence.add(row, token)
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
