"""Rollout engine choice: transformers (reference), llama.cpp (CPU, GGUF) or vLLM (GPU).

Every engine trains the adapter in transformers + PEFT (GRPO's pi_old is computed there);
they differ in who samples, and llama.cpp also scores what it sampled for the priors. `auto`
takes the fastest one that is installed and can run the model: vLLM where a CUDA GPU and vLLM
are present, else llama.cpp for a model with a GGUF file (the embedded ones), else
transformers.
"""

from __future__ import annotations

from importlib.util import find_spec

import torch

from pot.policy.base import Policy
from pot.policy.models import gguf_path

ENGINES = ("auto", "transformers", "llamacpp", "vllm")


class EngineError(ValueError):
    """An unknown engine, or one that is not installed or cannot run the model."""


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


def load_policy(
    model: str = "default",
    engine: str = "auto",
    device: str | None = None,
    *,
    threads: int | None = None,
) -> Policy:
    """A policy for `model` sampling with `engine`; device (transformers only) defaults to
    the GPU when one is visible; threads (llama.cpp only) to torch's thread count."""
    chosen = resolve_engine(model, engine)
    if chosen == "llamacpp":
        from pot.policy.llamacpp_policy import LlamaCppPolicy

        return LlamaCppPolicy.load(model, threads=threads)
    if chosen == "vllm":
        from pot.policy.vllm_policy import VLLMPolicy

        return VLLMPolicy.load(model)
    from pot.policy.transformers_policy import TransformersPolicy

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return TransformersPolicy.load(model, device=device)


def _vllm_ready() -> bool:
    return torch.cuda.is_available() and find_spec("vllm") is not None
