"""Who learns: the causal LM with its PEFT LoRA adapter, the prompt encoding, and the log-prob
passes GRPO trains on. Rollout engines sample from it (pot.policy.lora_policy composes both)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_layers import GradientCheckpointingLayer

from pot.policy.base import Prompt

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


class Learner:
    """A causal LM with an optional LoRA adapter (attached by the GRPO trainer).

    Without an adapter it is the base model; `attach_adapter` wraps the model with PEFT,
    freezes the base weights and stores the seeded initial adapter that `reset_adapter`
    restores.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model: PreTrainedModel | PeftModel = model.eval()
        self.tokenizer = tokenizer
        self.context_length: int = model.config.max_position_embeddings
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id
        self.pad_token_id: int = pad if pad is not None else tokenizer.eos_token_id
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        self._initial_adapter: AdapterState | None = None
        self._attached: tuple[LoraConfig, int] | None = None  # the adapter's settings and seed
        self.checkpointing = False  # enable_gradient_checkpointing
        # the log-prob code applies lm_head to hidden states, as these models' heads do
        config = model.config
        self._plain_head = (
            getattr(config, "final_logit_softcapping", None) is None
            and getattr(config, "logit_scale", None) is None
        )

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

    def room_for(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """New tokens a prompt of this length leaves room for, at most max_new_tokens."""
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
        base = self.model.get_base_model() if self.has_adapter else self.model
        return getattr(base, base.base_model_prefix)

    # --- adapter lifecycle ---------------------------------------------------------------

    def attach_adapter(self, lora: LoraConfig, *, seed: int = 0) -> None:
        """A fresh LoRA adapter (seeded init) on the frozen base model. The same settings and
        seed as the attached adapter's only restore its initial weights: wrapping the model
        again costs ~1 s a problem and gives the same weights."""
        if self.has_adapter and self._attached == (lora, seed):
            self.reset_adapter()
            return
        self._attached = (copy.deepcopy(lora), seed)  # peft expands the config it is given
        base = self.model.unload() if self.has_adapter else self.model
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # peft calls a transformers method that transformers 5 deprecates: not ours to fix
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            torch.manual_seed(seed)
            self.model = get_peft_model(base, lora).eval()
        self._initial_adapter = self.adapter_state()

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each decoder layer's activations during backward instead of keeping them.

        transformers checkpoints a layer only while it is in training mode and then drops its
        KV cache, so `checkpointed` switches just the layer modules (their dropouts stay in eval
        mode) and only cache-free passes (`sequence_logprobs_each`) can use it.
        """
        base = self.model.get_base_model() if self.has_adapter else self.model
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

    @property
    def has_adapter(self) -> bool:
        return isinstance(self.model, PeftModel)

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

    def adapter_equals(self, state: AdapterState | None) -> bool:
        """Whether the adapter weights are exactly `state` (None: no adapter is attached)."""
        if state is None:
            return not self.has_adapter
        current = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        return current.keys() == state.keys() and all(
            torch.equal(param, state[name]) for name, param in current.items()
        )

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

    def reset_adapter(self) -> None:
        """The initial adapter again (same weights every time)."""
        if self._initial_adapter is not None:
            self.load_adapter_state(self._initial_adapter)


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return {token for token in [*ids, tokenizer.eos_token_id] if token is not None}
