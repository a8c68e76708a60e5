"""Test-time GRPO on the per-problem LoRA adapter (PoT paper, eq. 8-9)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from peft import LoraConfig

from pot.policy import AdapterState, Completion, Prompt, TransformersPolicy


@dataclass
class GRPOConfig:
    epsilon: float = 0.3  # PPO clip range of the ratio pi_theta / pi_old
    beta: float = 0.02  # weight of the k3 KL penalty against the reference
    epochs: int = 3  # gradient steps on each group
    lr: float = 1e-4
    weight_decay: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: str | list[str] = "all-linear"  # every linear projection but lm_head
    ref_refresh_every: int = 10  # reference := copy of the adapter after every this many updates
    eta: float = 0.05  # floor of the reward std in the advantage
    adv_clip: float = 3.0  # advantages are clipped to [-adv_clip, adv_clip]
    max_grad_norm: float = 1.0
    adapter_seed: int = 0  # the LoRA init; the same seed gives the same initial adapter

    def lora_config(self) -> LoraConfig:
        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.lora_target_modules,
            task_type="CAUSAL_LM",
        )


@dataclass
class UpdateStats:
    skipped: bool  # all rewards equal: zero advantages, no step taken
    version: int  # the policy's adapter version after this update
    steps: int = 0  # optimizer steps taken (the epochs; 0 when skipped)
    advantages: list[float] = field(default_factory=list)
    loss: float = 0.0  # means over the epochs
    kl: float = 0.0
    clip_fraction: float = 0.0
    grad_norm: float = 0.0  # before clipping
    seconds: float = 0.0


def group_advantages(
    rewards: Sequence[float] | torch.Tensor, eta: float, clip: float
) -> torch.Tensor:
    """A_i = clip((R_i - mean R) / max(std R, eta), -clip, clip), one per sequence.

    std is the population std (unbiased=False): the advantages are z-scores against the
    group's own empirical reward distribution, so their mean square is 1 whatever the group
    size G (the update scale does not depend on G), and it is defined for any G.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    std = rewards.std(unbiased=False).clamp_min(eta)
    return ((rewards - rewards.mean()) / std).clamp(-clip, clip)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim of the positions where mask is true (padding ignored)."""
    mask = mask.bool()
    total = torch.where(mask, values, torch.zeros_like(values)).sum(-1)
    return total / mask.sum(-1).clamp_min(1)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate minus beta * k3 KL, averaged per sequence, then over sequences.

    logp, old_logp, ref_logp, mask: [G, T] per completion token; advantages: [G].
    Each sequence weighs the same whatever its length.
    """
    advantages = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - epsilon, 1 + epsilon) * advantages)
    log_ref_ratio = ref_logp - logp
    kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1
    loss = -masked_mean(surrogate - beta * kl, mask).mean()
    # tokens whose gradient the clip removes
    low = (ratio < 1 - epsilon) & (advantages < 0)
    high = (ratio > 1 + epsilon) & (advantages > 0)
    stats = {
        "kl": masked_mean(kl, mask).mean().item(),
        "clip_fraction": masked_mean((low | high).float(), mask).mean().item(),
    }
    return loss, stats


class GRPOTrainer:
    """Evolves the policy's LoRA adapter on one problem; `reset` before the next problem.

    Creating a trainer attaches a fresh adapter with the config's LoRA settings.
    """

    def __init__(self, policy: TransformersPolicy, config: GRPOConfig | None = None) -> None:
        self.policy = policy
        self.config = config or GRPOConfig()
        policy.attach_adapter(self.config.lora_config(), seed=self.config.adapter_seed)
        self.reset()

    def reset(self) -> None:
        """New problem: initial adapter, fresh optimizer state, base model as reference."""
        self.policy.reset()
        self.optimizer = torch.optim.AdamW(
            self.policy.trainable_parameters(),
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
        )
        self.reference: AdapterState | None = None  # None: the base model
        self.updates = 0
        self.skipped = 0

    def update(
        self, prompt: Prompt, completions: Sequence[Completion], rewards: Sequence[float]
    ) -> UpdateStats:
        """One GRPO update on a group of completions of `prompt` with their rewards."""
        if len(completions) != len(rewards):
            raise ValueError(f"{len(completions)} completions but {len(rewards)} rewards")
        start = time.perf_counter()
        if max(rewards) == min(rewards):
            self.skipped += 1
            seconds = time.perf_counter() - start
            return UpdateStats(skipped=True, version=self.policy.version, seconds=seconds)
        prompt_ids = self.policy.encode_prompt(prompt)
        if any(completion.prompt_tokens != len(prompt_ids) for completion in completions):
            raise ValueError("the completions were not sampled from this prompt")
        sequences = [completion.token_ids for completion in completions]
        config = self.config
        advantages = group_advantages(rewards, config.eta, config.adv_clip).to(self.policy.device)
        with torch.no_grad():
            old_logp, mask = self.policy.sequence_logprobs(prompt_ids, sequences)
            with self.policy.adapter_weights(self.reference):
                ref_logp, _ = self.policy.sequence_logprobs(prompt_ids, sequences)

        parameters = self.policy.trainable_parameters()
        losses, kls, clip_fractions, grad_norms = [], [], [], []
        for _ in range(config.epochs):
            logp, _ = self.policy.sequence_logprobs(prompt_ids, sequences)
            loss, stats = grpo_loss(
                logp, old_logp, ref_logp, advantages, mask, config.epsilon, config.beta
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            self.optimizer.step()
            losses.append(loss.item())
            kls.append(stats["kl"])
            clip_fractions.append(stats["clip_fraction"])
            grad_norms.append(grad_norm.item())

        self.updates += 1
        self.policy.version += 1
        if self.updates % config.ref_refresh_every == 0:
            self.reference = self.policy.adapter_state()
        return UpdateStats(
            skipped=False,
            version=self.policy.version,
            steps=config.epochs,
            advantages=advantages.tolist(),
            loss=sum(losses) / len(losses),
            kl=sum(kls) / len(kls),
            clip_fraction=sum(clip_fractions) / len(clip_fractions),
            grad_norm=sum(grad_norms) / len(grad_norms),
            seconds=time.perf_counter() - start,
        )
