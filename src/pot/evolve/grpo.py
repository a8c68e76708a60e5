"""Test-time GRPO on the per-problem LoRA adapter (PoT paper, eq. 8-9)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from peft import LoraConfig

from pot.evolve.precision import autocast, resolve_dtype
from pot.evolve.scoring import PerSequenceScorer, Scorer, SharedPrefixScorer
from pot.policy import AdapterState, Completion, LoraPolicy, Prompt


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
    # "shared": each pass runs the group's prompt once and the completions on its keys/values,
    # pi_old is the first epoch's detached forward and the reference pass is skipped while the
    # reference equals the adapter; siblings with different prompts use per-sequence passes.
    # "per_sequence": every row runs its whole prompt, with separate no-grad pi_old and
    # reference passes before the epochs (the reference implementation, for comparisons).
    path: str = "shared"
    # autocast of the update's passes: "auto" = bf16 on a CUDA GPU and on a CPU with native
    # bf16 (AVX512-BF16 / AMX), else fp32; or "float32" / "bfloat16". Loss, log-softmax and
    # ratios stay fp32.
    dtype: str = "auto"
    micro_batch_tokens: int = 0  # >0: split each pass so a chunk's rows x width stay within it
    # recompute each layer's activations in backward (less memory, ~1/3 more compute); it needs
    # cache-free passes, so the update then runs per sequence
    gradient_checkpointing: bool = False
    threads: int = 0  # >0: torch intra-op threads during the update (0: leave torch's setting)

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
    path: str = ""  # "shared" or "per_sequence": how this update computed its log-probs
    dtype: str = ""  # the autocast dtype of its passes
    forward_passes: int = 0  # passes over the whole group (with or without gradient)
    backward_passes: int = 0
    prompt_tokens: int = 0  # prompt positions run through the model, all passes together
    micro_batches: int = 0  # chunks per pass


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

    def __init__(self, policy: LoraPolicy, config: GRPOConfig | None = None) -> None:
        self.policy = policy
        self.learner = policy.learner
        self.config = config or GRPOConfig()
        if self.config.path not in PATHS:
            raise ValueError(
                f"unknown GRPO path {self.config.path!r}: choose one of {', '.join(PATHS)}"
            )
        self.dtype = resolve_dtype(self.config.dtype, self.learner.device)
        self.learner.attach_adapter(self.config.lora_config(), seed=self.config.adapter_seed)
        if self.config.gradient_checkpointing:
            self.learner.enable_gradient_checkpointing()
        self.reset()

    def reset(self) -> None:
        """New problem: initial adapter, fresh optimizer state, base model as reference."""
        self.policy.reset()
        self.optimizer = torch.optim.AdamW(
            self.learner.trainable_parameters(),
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
        return self.update_each([prompt] * len(completions), completions, rewards)

    def update_each(
        self,
        prompts: Sequence[Prompt],
        completions: Sequence[Completion],
        rewards: Sequence[float],
    ) -> UpdateStats:
        """One GRPO update on a group whose completion i was sampled from prompts[i]."""
        if not len(prompts) == len(completions) == len(rewards):
            raise ValueError(
                f"{len(completions)} completions but {len(rewards)} rewards "
                f"and {len(prompts)} prompts"
            )
        start = time.perf_counter()
        if max(rewards) == min(rewards):
            self.skipped += 1
            seconds = time.perf_counter() - start
            return UpdateStats(skipped=True, version=self.policy.version, seconds=seconds)
        prompts_ids = self._encode(prompts)
        if any(
            c.prompt_tokens != len(ids) for c, ids in zip(completions, prompts_ids, strict=True)
        ):
            raise ValueError("the completions were not sampled from this prompt")
        advantages = group_advantages(rewards, self.config.eta, self.config.adv_clip)
        with _threads(self.config.threads), autocast(self.learner.device, self.dtype):
            stats = self._train(prompts_ids, [c.token_ids for c in completions], advantages)
        self.updates += 1
        self.policy.version += 1
        if self.updates % self.config.ref_refresh_every == 0:
            self.reference = self.learner.adapter_state()
        stats.version = self.policy.version
        stats.seconds = time.perf_counter() - start
        return stats

    def _encode(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        encoded: dict[int, list[int]] = {}  # the same prompt object is encoded once
        return [encoded.setdefault(id(p), self.learner.encode_prompt(p)) for p in prompts]

    def _scorer(self, prompts_ids: list[list[int]], sequences: list[list[int]]) -> Scorer:
        budget = self.config.micro_batch_tokens or None
        shared = all(ids == prompts_ids[0] for ids in prompts_ids)
        if self.config.path == "shared" and shared and not self.config.gradient_checkpointing:
            return SharedPrefixScorer(self.learner, prompts_ids[0], sequences, budget)
        return PerSequenceScorer(self.learner, prompts_ids, sequences, budget)

    def _train(
        self, prompts_ids: list[list[int]], sequences: list[list[int]], advantages: torch.Tensor
    ) -> UpdateStats:
        config = self.config
        scorer = self._scorer(prompts_ids, sequences)
        advantages = advantages.to(self.learner.device)
        stats = UpdateStats(
            skipped=False,
            version=self.policy.version,
            steps=config.epochs,
            advantages=advantages.tolist(),
            path="shared" if isinstance(scorer, SharedPrefixScorer) else "per_sequence",
            dtype=str(self.dtype).removeprefix("torch."),
            micro_batches=len(scorer.chunks),
        )

        def evaluate() -> list[torch.Tensor]:
            stats.forward_passes += 1
            return [logp for logp, _ in scorer.evaluate()]

        old: list[torch.Tensor] | None = None  # None: the first epoch's forward gives them
        ref: list[torch.Tensor] | None = None  # None: equal to pi_old
        if config.path == "per_sequence":
            old = evaluate()
            with self.learner.adapter_weights(self.reference):
                ref = evaluate()
        elif not self._reference_is_current():
            with self.learner.adapter_weights(self.reference):
                ref = evaluate()

        parameters = self.learner.trainable_parameters()
        totals = dict.fromkeys(("loss", "kl", "clip_fraction", "grad_norm"), 0.0)
        for _ in range(config.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            logps = self._epoch(scorer, old, ref, advantages, totals)
            old = old if old is not None else logps
            stats.forward_passes += 1
            stats.backward_passes += 1
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            totals["grad_norm"] += grad_norm.item()
            self.optimizer.step()
        stats.prompt_tokens = stats.forward_passes * scorer.prompt_tokens
        for key, total in totals.items():
            setattr(stats, key, total / config.epochs)
        return stats

    def _epoch(
        self,
        scorer: Scorer,
        old: list[torch.Tensor] | None,
        ref: list[torch.Tensor] | None,
        advantages: torch.Tensor,
        totals: dict[str, float],
    ) -> list[torch.Tensor]:
        """Forward and backward of the group loss, chunk by chunk; adds the loss, KL and clip
        fraction to `totals`. Returns this epoch's detached log-probs per chunk (pi_old when
        `old` is None: the first epoch's forward, before any step, is exactly pi_old's)."""
        config = self.config
        size = len(advantages)
        logps: list[torch.Tensor] = []

        def chunk_loss(index: int, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            rows = scorer.chunks[index]
            logps.append(logp.detach())
            old_logp = old[index] if old is not None else logps[index]
            ref_logp = ref[index] if ref is not None else old_logp
            loss, chunk = grpo_loss(
                logp, old_logp, ref_logp, advantages[rows], mask, config.epsilon, config.beta
            )
            share = len(rows) / size  # the group loss is a mean over its sequences
            totals["loss"] += loss.item() * share
            totals["kl"] += chunk["kl"] * share
            totals["clip_fraction"] += chunk["clip_fraction"] * share
            return loss * share

        scorer.train_pass(chunk_loss)
        return logps

    def _reference_is_current(self) -> bool:
        """Whether the reference's log-probs equal pi_old's: the reference is the base and the
        adapter adds nothing yet (LoRA B = 0, as initialised), or it is a copy of the adapter
        that has not moved since (the update right after a refresh)."""
        if self.reference is None:
            return self.learner.adapter_is_identity()
        return self.learner.adapter_equals(self.reference)


PATHS = ("shared", "per_sequence")


@contextmanager
def _threads(count: int) -> Iterator[None]:
    if count <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
