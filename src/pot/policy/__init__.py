"""Policies: sample programs with log-probs, and carry the per-problem LoRA adapter.

A `LoraPolicy` composes who learns (`Learner`: the PEFT model, its adapter and the log-prob
passes) with who samples (a rollout engine, chosen in pot.policy.engines)."""

from pot.policy.base import Completion, FinishReason, Policy, Prompt
from pot.policy.learner import AdapterState, Learner, PromptTooLongError
from pot.policy.lora_policy import LoraPolicy
from pot.policy.models import ALIASES, EMBEDDED_MODELS, ModelNotFoundError, cache_dir, load_model

__all__ = [
    "ALIASES",
    "EMBEDDED_MODELS",
    "AdapterState",
    "Completion",
    "FinishReason",
    "Learner",
    "LoraPolicy",
    "ModelNotFoundError",
    "Policy",
    "Prompt",
    "PromptTooLongError",
    "cache_dir",
    "load_model",
]
