"""Policy evolution: test-time updates of the per-problem adapter."""

from pot.evolve.grpo import (
    GRPOConfig,
    GRPOTrainer,
    UpdateStats,
    group_advantages,
    grpo_loss,
    masked_mean,
)

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "UpdateStats",
    "group_advantages",
    "grpo_loss",
    "masked_mean",
]
