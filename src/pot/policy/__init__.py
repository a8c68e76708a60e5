"""Policies: sample programs with log-probs, and carry the per-problem LoRA adapter."""

from pot.policy.base import Completion, FinishReason, Policy, Prompt
from pot.policy.models import ALIASES, EMBEDDED_MODELS, ModelNotFoundError, cache_dir, load_model
from pot.policy.transformers_policy import AdapterState, PromptTooLongError, TransformersPolicy

__all__ = [
    "ALIASES",
    "EMBEDDED_MODELS",
    "AdapterState",
    "Completion",
    "FinishReason",
    "ModelNotFoundError",
    "Policy",
    "Prompt",
    "PromptTooLongError",
    "TransformersPolicy",
    "cache_dir",
    "load_model",
]
