"""Rollout engine choice: transformers (reference), llama.cpp (CPU, GGUF) or vLLM (GPU).

Every engine samples from the same learner (transformers + PEFT, where the adapter trains and
GRPO's pi_old is computed); they differ in who samples, and llama.cpp also scores what it
sampled for the priors. `auto` takes the fastest one that is installed and can run the model:
vLLM where a CUDA GPU and vLLM are present, else llama.cpp for a model with a GGUF file (the
embedded ones), else transformers.

Engine options are scoped by engine (`llamacpp.threads=2`, `vllm.max_lora_rank=32`): each
engine takes its own and ignores the others', so they hold whichever engine `auto` picks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib.util import find_spec
from typing import Any

import torch

from pot.overrides import apply_overrides
from pot.policy.learner import Learner
from pot.policy.llamacpp_engine import LlamaCppConfig, LlamaCppEngine
from pot.policy.lora_policy import LoraPolicy
from pot.policy.models import gguf_path, load_model
from pot.policy.vllm_engine import VLLMConfig, VLLMEngine, model_source

ENGINES = ("auto", "transformers", "llamacpp", "vllm")


class EngineError(ValueError):
    """An unknown engine or engine option, or an engine that is not installed or cannot run
    the model."""


def resolve_engine(model: str, engine: str = "auto") -> str:
    """The concrete engine that `engine` means for `model` here; EngineError if none can."""
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "auto":
        if _vllm_ready():
            return "vllm"
        if find_spec("llama_cpp") is not None and gguf_path(model) is not None:
            return "llamacpp"
        return "transformers"
    if engine == "llamacpp":
        if find_spec("llama_cpp") is None:
            raise EngineError(
                "engine 'llamacpp' needs llama-cpp-python: "
                "pip install 'policy-of-thoughts[llamacpp]'"
            )
        if gguf_path(model) is None:
            raise EngineError(
                f"engine 'llamacpp' runs GGUF models and {model!r} has no GGUF file (the "
                "embedded models have one); use --engine transformers"
            )
    if engine == "vllm" and not _vllm_ready():
        raise EngineError(
            "engine 'vllm' needs a CUDA GPU and vLLM (pip install vllm); "
            "use --engine transformers or llamacpp"
        )
    return engine


@dataclass
class EngineOptions:
    """The options of the engines that take some, as `--set llamacpp.threads=2` sets them."""

    llamacpp: LlamaCppConfig = field(default_factory=LlamaCppConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None = None) -> EngineOptions:
        """From dotted options ({"llamacpp.threads": "2"}); ValueError, one line, for an
        unknown option or a bad value."""
        parsed = apply_overrides(cls(), dict(options or {}), "the engines")
        parsed.llamacpp.check()
        parsed.vllm.check()
        return parsed


def is_engine_option(key: str) -> bool:
    """Whether a `--set` key is an engine option (`llamacpp.threads`, `vllm.max_lora_rank`)."""
    return key.partition(".")[0] in {option.name for option in fields(EngineOptions)}


def load_policy(
    model: str = "default",
    engine: str = "auto",
    device: str | None = None,
    *,
    options: Mapping[str, Any] | None = None,
) -> LoraPolicy:
    """A policy for `model` sampling with `engine`, with the engine `options` (see
    `EngineOptions`); device (transformers only) defaults to the GPU when one is visible."""
    chosen = resolve_engine(model, engine)
    parsed = EngineOptions.parse(options)
    if chosen == "transformers":
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return LoraPolicy(Learner(*load_model(model, device=device)))
    if chosen == "llamacpp":
        learner = Learner(*load_model(model))
        return LoraPolicy(learner, LlamaCppEngine(gguf_path(model), parsed.llamacpp))
    learner = Learner(*load_model(model, device="cuda"))
    return LoraPolicy(learner, VLLMEngine(model_source(model), parsed.vllm))


def _vllm_ready() -> bool:
    return torch.cuda.is_available() and find_spec("vllm") is not None
