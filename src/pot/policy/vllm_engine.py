"""Rollouts from vLLM on a GPU, the training adapter served as a new LoRARequest per version.

UNTESTED ON vLLM: vLLM cannot be installed on the machines this project is developed and
tested on (no GPU), so this module has never run against it. It is written against vLLM's
documented offline API (LLM(enable_lora=True, max_lora_rank=..., enable_prefix_caching=True,
gpu_memory_utilization=...), LLM.generate(prompts, sampling_params, lora_request=...),
SamplingParams(stop=..., include_stop_str_in_output=...), LoRARequest(name, id, path)), and
tests/test_policy.py runs its logic against a stand-in object with those call signatures.

As with the llama.cpp engine, the adapter trains in transformers + PEFT (this class is a
TransformersPolicy, on the same GPU) and per-token log-probs come from that training model.
After an adapter change the adapter is saved with PEFT's save_pretrained and served under a
new LoRARequest name and a new integer id: vLLM caches adapters by id, so reusing one would
serve a stale adapter. Prefix caching lets the k siblings of an expansion share the prompt.

vLLM has no per-request stopping callback, so the closing fence is reached with stop strings:
each round decodes until the next ``` (the first is the opening fence), and rows whose first
block is still open continue from their tokens so far (the prompt is a cached prefix). No
row decodes past its closing fence, so the token counts are what was generated.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pot.policy.base import Completion, Prompt
from pot.policy.fence import fence_length
from pot.policy.models import ALIASES, EMBEDDED_MODELS, cached_embedded_model, load_model
from pot.policy.transformers_policy import AdapterState, TransformersPolicy

FENCE = "```"


@dataclass
class VLLMConfig:
    # vLLM reserves LoRA buffers for adapters up to this rank; the adapter's r must fit
    max_lora_rank: int = 16
    # share of GPU memory vLLM takes for weights and KV cache; the training model needs the rest
    gpu_memory_utilization: float = 0.5
    enable_prefix_caching: bool = True


def vllm_api() -> SimpleNamespace:
    """The three vLLM names the engine calls."""
    import vllm
    from vllm.lora.request import LoRARequest

    return SimpleNamespace(
        LLM=vllm.LLM, SamplingParams=vllm.SamplingParams, LoRARequest=LoRARequest
    )


class VLLMPolicy(TransformersPolicy):
    """TransformersPolicy (training, log-probs) whose rollouts run in vLLM.

    `generated_tokens` counts every token vLLM decoded, over all rounds.
    """

    engine_name = "vllm"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        model_source: str,
        config: VLLMConfig | None = None,
        *,
        api: SimpleNamespace | None = None,
    ) -> None:
        super().__init__(model, tokenizer)
        self.config = config or VLLMConfig()
        self.api = api or vllm_api()
        self.llm = self.api.LLM(
            model=model_source,
            enable_lora=True,
            max_lora_rank=self.config.max_lora_rank,
            enable_prefix_caching=self.config.enable_prefix_caching,
            gpu_memory_utilization=self.config.gpu_memory_utilization,
        )
        self.generated_tokens = 0
        self._lora_request: Any = None  # None: the base model
        self._synced: AdapterState | None = None
        self._next_id = 1
        self._workdir = tempfile.TemporaryDirectory(prefix="pot-vllm-lora-")

    @classmethod
    def load(cls, name: str = "default", config: VLLMConfig | None = None) -> VLLMPolicy:
        key = ALIASES.get(name, name)
        source = str(cached_embedded_model(key)) if key in EMBEDDED_MODELS else name
        return cls(*load_model(name, device="cuda"), source, config)

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
        sampling = {
            "temperature": temperature,
            "top_p": top_p,
            "repetition_penalty": repetition_penalty,
        }
        return self._rollout(prompt, n, max_new_tokens, sampling, seed, stop_at_fence, logprobs)

    def greedy(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 2048,
        stop_at_fence: bool = True,
        logprobs: bool = True,
    ) -> Completion:
        sampling = {"temperature": 0.0}
        return self._rollout(prompt, 1, max_new_tokens, sampling, None, stop_at_fence, logprobs)[0]

    def _rollout(
        self,
        prompt: Prompt,
        n: int,
        max_new_tokens: int,
        sampling: dict,
        seed: int | None,
        stop_at_fence: bool,
        with_logprobs: bool,
    ) -> list[Completion]:
        prompt_ids = self.encode_prompt(prompt)
        room = self._room_for(len(prompt_ids), max_new_tokens)
        self.sync_adapter()
        generated = self._decode(prompt_ids, n, room, sampling, seed, stop_at_fence)
        fences = [fence_length(self.tokenizer, ids) if stop_at_fence else None for ids in generated]
        outputs = [
            ids[:fence] if fence else ids for ids, fence in zip(generated, fences, strict=True)
        ]
        logprobs = self.rollout_logprobs(prompt_ids, outputs, with_logprobs)
        return [
            self._completion(ids, row.tolist(), fence, len(prompt_ids))
            for ids, row, fence in zip(outputs, logprobs, fences, strict=True)
        ]

    def _decode(
        self,
        prompt_ids: list[int],
        n: int,
        room: int,
        sampling: dict,
        seed: int | None,
        stop_at_fence: bool,
    ) -> list[list[int]]:
        """n continuations, in rounds that each stop at the next fence (with stop_at_fence),
        until every row closed its first block, ended (eos) or ran out of room."""
        rows: list[list[int]] = [[] for _ in range(n)]
        stop = {"stop": [FENCE], "include_stop_str_in_output": True} if stop_at_fence else {}
        first = self.api.SamplingParams(n=n, seed=seed, max_tokens=room, **sampling, **stop)
        [request] = self._generate([prompt_ids], [first])
        pending = list(zip(range(n), request.outputs, strict=True))
        round_ = 0
        while pending:
            still_open = []
            for row, output in pending:
                rows[row] += list(output.token_ids)
                self.generated_tokens += len(output.token_ids)
                at_fence = output.finish_reason == "stop" and output.stop_reason == FENCE
                if (
                    at_fence
                    and len(rows[row]) < room
                    and fence_length(self.tokenizer, rows[row]) is None
                ):
                    still_open.append(row)
            round_ += 1
            if not still_open:
                break
            params = [
                self.api.SamplingParams(
                    n=1,
                    seed=None if seed is None else seed + round_ * n + row,
                    max_tokens=room - len(rows[row]),
                    **sampling,
                    **stop,
                )
                for row in still_open
            ]
            requests = self._generate([prompt_ids + rows[row] for row in still_open], params)
            pending = [
                (row, request.outputs[0]) for row, request in zip(still_open, requests, strict=True)
            ]
        return rows

    def _generate(self, prompts: list[list[int]], params: list) -> list:
        return self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts],
            params,
            lora_request=self._lora_request,
            use_tqdm=False,
        )

    def sync_adapter(self) -> None:
        """Serve the training adapter under a new LoRARequest if its weights changed; the old
        version's files are deleted and its id never requested again."""
        current = self.adapter_state() if isinstance(self.model, PeftModel) else None
        if current is None:
            self._lora_request, self._synced = None, None
            return
        if self._synced is not None and all(
            torch.equal(current[name], self._synced[name]) for name in current
        ):
            return
        rank = self.model.peft_config[self.model.active_adapter].r
        if rank > self.config.max_lora_rank:
            raise ValueError(
                f"the adapter has LoRA rank {rank} and vLLM was started with max_lora_rank "
                f"{self.config.max_lora_rank}: raise max_lora_rank or lower lora_r"
            )
        version_id = self._next_id
        self._next_id += 1
        path = Path(self._workdir.name) / f"v{version_id}"
        self.model.save_pretrained(path)
        if self._lora_request is not None:
            shutil.rmtree(self._lora_request.lora_path, ignore_errors=True)
        name = f"pot-adapter-{version_id}"
        self._lora_request = self.api.LoRARequest(name, version_id, str(path))
        self._synced = current
