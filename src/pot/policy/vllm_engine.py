"""Rollouts from vLLM on a GPU, the training adapter served as a new LoRARequest per version.

UNTESTED ON vLLM: vLLM cannot be installed on the machines this project is developed and
tested on (no GPU), so this module has never run against it. It is written against vLLM's
documented offline API (LLM(enable_lora=True, max_lora_rank=..., enable_prefix_caching=True,
gpu_memory_utilization=...), LLM.generate(prompts, sampling_params, lora_request=...),
SamplingParams(stop=..., include_stop_str_in_output=...), LoRARequest(name, id, path)), and
tests/test_policy.py runs its logic against a stand-in object with those call signatures.

As with the llama.cpp engine, the adapter trains in the learner (transformers + PEFT, on the
same GPU) and per-token log-probs come from the learner.
After an adapter change the adapter is saved with PEFT's save_pretrained and served under a
new LoRARequest name and a new integer id: vLLM caches adapters by id, so reusing one would
serve a stale adapter. Prefix caching lets the k siblings of an expansion share the prompt.

vLLM has no per-request stopping callback, so the closing fence is reached with stop strings:
each round decodes until the next ``` (the first is the opening fence), and rows whose first
block is still open continue from their tokens so far (the prompt is a cached prefix). No
row decodes past its closing fence, so the token counts are what was generated.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pot.policy.fence import StopRule
from pot.policy.learner import AdapterState, Learner
from pot.policy.models import ALIASES, EMBEDDED_MODELS, cached_embedded_model
from pot.policy.rollout import Rollouts, Sampling

FENCE = "```"


@dataclass
class VLLMConfig:
    # vLLM reserves LoRA buffers for adapters up to this rank; the adapter's r must fit
    max_lora_rank: int = 16
    # share of GPU memory vLLM takes for weights and KV cache; the training model needs the rest
    gpu_memory_utilization: float = 0.5
    enable_prefix_caching: bool = True

    def check(self) -> None:
        """ValueError, one line, for a value vLLM cannot take."""
        if self.max_lora_rank < 1:
            raise ValueError(f"vllm.max_lora_rank must be 1 or more, not {self.max_lora_rank}")
        if not 0 < self.gpu_memory_utilization < 1:
            raise ValueError(
                "vllm.gpu_memory_utilization is a share of the GPU's memory between 0 and 1, "
                f"not {self.gpu_memory_utilization}"
            )


def vllm_api() -> SimpleNamespace:
    """The three vLLM names the engine calls."""
    import vllm
    from vllm.lora.request import LoRARequest

    return SimpleNamespace(
        LLM=vllm.LLM, SamplingParams=vllm.SamplingParams, LoRARequest=LoRARequest
    )


def model_source(name: str) -> str:
    """What vLLM loads for a model name: the embedded model's converted directory, else the
    name itself (a local directory or a Hub id)."""
    key = ALIASES.get(name, name)
    return str(cached_embedded_model(key)) if key in EMBEDDED_MODELS else name


class VLLMEngine:
    """Rollouts in vLLM; `generated_tokens` counts every token vLLM decoded, over all rounds."""

    name = "vllm"

    def __init__(
        self,
        model_source: str,
        config: VLLMConfig | None = None,
        *,
        api: SimpleNamespace | None = None,
    ) -> None:
        self.config = config or VLLMConfig()
        self.config.check()
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
        self.workdir = tempfile.TemporaryDirectory(prefix="pot-vllm-lora-")

    def generate(
        self,
        learner: Learner,
        prompt_ids: list[int],
        n: int,
        max_new_tokens: int,
        sampling: Sampling | None,
        stop: StopRule,
    ) -> Rollouts:
        """n rows, in rounds that each stop at the next fence (with the fence rule), until
        every row closed its first block, ended (eos) or ran out of room."""
        self.sync_adapter(learner)
        rows: list[list[int]] = [[] for _ in range(n)]
        seed = sampling.seed if sampling else None
        first = self._params(n, seed, max_new_tokens, sampling, stop)
        [request] = self._generate([prompt_ids], [first])
        pending = list(enumerate(request.outputs))
        for round_ in itertools.count(1):
            still_open = self._extend(rows, pending, stop, max_new_tokens)
            if not still_open:
                break
            params = [
                self._params(
                    1,
                    None if seed is None else seed + round_ * n + row,
                    max_new_tokens - len(rows[row]),
                    sampling,
                    stop,
                )
                for row in still_open
            ]
            requests = self._generate([prompt_ids + rows[row] for row in still_open], params)
            pending = [(row, r.outputs[0]) for row, r in zip(still_open, requests, strict=True)]
        return Rollouts(token_ids=rows, logprobs=None)

    def _extend(
        self, rows: list[list[int]], pending: list, stop: StopRule, max_new_tokens: int
    ) -> list[int]:
        """Add each pending row's new tokens; return the rows to continue: stopped at an
        opening fence (their first block is still open) with room left."""
        still_open = []
        for row, output in pending:
            rows[row] += list(output.token_ids)
            self.generated_tokens += len(output.token_ids)
            ended = stop.feed(row, output.token_ids)
            at_fence = output.finish_reason == "stop" and output.stop_reason == FENCE
            if at_fence and not ended and len(rows[row]) < max_new_tokens:
                still_open.append(row)
        return still_open

    def reset(self) -> None:
        """Nothing carries over between problems (vLLM's prefix cache is exact)."""

    def _params(
        self, n: int, seed: int | None, max_tokens: int, sampling: Sampling | None, stop: StopRule
    ) -> Any:
        if sampling is None:
            options = {"temperature": 0.0}
        else:
            options = {
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "repetition_penalty": sampling.repetition_penalty,
            }
        fence = {"stop": [FENCE], "include_stop_str_in_output": True} if stop.fence else {}
        return self.api.SamplingParams(n=n, seed=seed, max_tokens=max_tokens, **options, **fence)

    def _generate(self, prompts: list[list[int]], params: list) -> list:
        return self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts],
            params,
            lora_request=self._lora_request,
            use_tqdm=False,
        )

    def sync_adapter(self, learner: Learner) -> None:
        """Serve the learner's adapter under a new LoRARequest if its weights changed; the old
        version's files are deleted and its id never requested again."""
        if learner.adapter_equals(self._synced):
            return
        if not learner.has_adapter:
            self._lora_request, self._synced = None, None
            return
        model = learner.model
        rank = model.peft_config[model.active_adapter].r
        if rank > self.config.max_lora_rank:
            raise ValueError(
                f"the adapter has LoRA rank {rank} and vLLM was started with max_lora_rank "
                f"{self.config.max_lora_rank}: raise max_lora_rank or lower lora_r"
            )
        version_id = self._next_id
        self._next_id += 1
        path = Path(self.workdir.name) / f"v{version_id}"
        model.save_pretrained(path)
        if self._lora_request is not None:
            shutil.rmtree(self._lora_request.lora_path, ignore_errors=True)
        name = f"pot-adapter-{version_id}"
        self._lora_request = self.api.LoRARequest(name, version_id, str(path))
        self._synced = learner.adapter_state()
