"""Rollouts from vLLM on a GPU, the training adapter served as a new LoRARequest per version.

UNTESTED: vLLM cannot be installed on the machines this project is developed and tested on
(no GPU with network, wheels too large to carry), so this module has never run. It is written
against vLLM's documented offline API (LLM(enable_lora=True, max_lora_rank=...,
enable_prefix_caching=True), LoRARequest, SamplingParams) and kept out of every test.

As with the llama.cpp engine, the adapter trains in transformers + PEFT (this class is a
TransformersPolicy, on the same GPU) and per-token log-probs come from that training model.
After an adapter change the adapter is saved with PEFT's save_pretrained and served under a
new LoRARequest name and a new integer id: vLLM caches adapters by id, so reusing one would
serve a stale adapter. Prefix caching lets the k siblings of an expansion share the prompt.
vLLM has no per-request stopping callback for "the closing fence of the first block", so a
completion is generated to eos / max tokens and cut at its closing fence afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pot.policy.base import Completion, Prompt
from pot.policy.models import ALIASES, EMBEDDED_MODELS, cached_embedded_model, load_model
from pot.policy.transformers_policy import AdapterState, TransformersPolicy
from pot.prompts import closing_fence_end


class VLLMPolicy(TransformersPolicy):
    """TransformersPolicy (training, log-probs) whose rollouts run in vLLM (untested)."""

    engine_name = "vllm"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        model_source: str,
        *,
        max_lora_rank: int = 64,
        gpu_memory_utilization: float = 0.5,
    ) -> None:
        super().__init__(model, tokenizer)
        from vllm import LLM

        self.llm = LLM(
            model=model_source,
            enable_lora=True,
            max_lora_rank=max_lora_rank,
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self._lora_request: Any = None  # None: the base model
        self._synced: AdapterState | None = None
        self._next_id = 1
        self._workdir = tempfile.TemporaryDirectory(prefix="pot-vllm-lora-")

    @classmethod
    def load(cls, name: str = "default", **options: Any) -> VLLMPolicy:
        key = ALIASES.get(name, name)
        source = str(cached_embedded_model(key)) if key in EMBEDDED_MODELS else name
        return cls(*load_model(name, device="cuda"), source, **options)

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
        from vllm import SamplingParams

        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            repetition_penalty=repetition_penalty,
        )
        return self._rollout(prompt, params, max_new_tokens, stop_at_fence, logprobs)

    def greedy(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 2048,
        stop_at_fence: bool = True,
        logprobs: bool = True,
    ) -> Completion:
        from vllm import SamplingParams

        params = SamplingParams(n=1, temperature=0.0)
        return self._rollout(prompt, params, max_new_tokens, stop_at_fence, logprobs)[0]

    def _rollout(
        self,
        prompt: Prompt,
        params: Any,
        max_new_tokens: int,
        stop_at_fence: bool,
        with_logprobs: bool,
    ) -> list[Completion]:
        prompt_ids = self.encode_prompt(prompt)
        params.max_tokens = self._room_for(len(prompt_ids), max_new_tokens)
        self.sync_adapter()
        [request] = self.llm.generate(
            [{"prompt_token_ids": prompt_ids}],
            params,
            lora_request=self._lora_request,
            use_tqdm=False,
        )
        generated = [list(output.token_ids) for output in request.outputs]
        fences = [self._fence_length(ids) if stop_at_fence else None for ids in generated]
        outputs = [
            ids[:fence] if fence else ids for ids, fence in zip(generated, fences, strict=True)
        ]
        logprobs = self.rollout_logprobs(prompt_ids, outputs, with_logprobs)
        return [
            self._completion(ids, row.tolist(), fence, len(prompt_ids))
            for ids, row, fence in zip(outputs, logprobs, fences, strict=True)
        ]

    def _fence_length(self, ids: list[int]) -> int | None:
        """Tokens up to the one that closes the first fenced block (None if none does)."""
        text = ""
        for length, token in enumerate(ids, start=1):
            text += self.tokenizer.decode([token])
            if closing_fence_end(text) is not None:
                return length
        return None

    def sync_adapter(self) -> None:
        """Serve the training adapter under a new LoRARequest if its weights changed."""
        from vllm.lora.request import LoRARequest

        current = self.adapter_state() if isinstance(self.model, PeftModel) else None
        if current is None:
            self._lora_request, self._synced = None, None
            return
        if self._synced is not None and all(
            torch.equal(current[name], self._synced[name]) for name in current
        ):
            return
        version_id = self._next_id
        self._next_id += 1
        path = Path(self._workdir.name) / f"v{version_id}"
        self.model.save_pretrained(path)
        if self._lora_request is not None:  # never requested again: its id is retired
            shutil.rmtree(self._lora_request.lora_path, ignore_errors=True)
        self._lora_request = LoRARequest(f"pot-adapter-{version_id}", version_id, str(path))
        self._synced = current
