import math
from dataclasses import replace

import pytest
import torch

from pot.evolve import GRPOConfig, GRPOTrainer, group_advantages, grpo_loss
from pot.policy import Completion, TransformersPolicy
from pot.policy.tiny import tiny_random_model

PROMPT = "a"
CONFIG = GRPOConfig(lr=1e-2)  # the tiny random model needs a larger step than the paper's 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def make_trainer(config: GRPOConfig = CONFIG) -> GRPOTrainer:
    return GRPOTrainer(TransformersPolicy(*tiny_random_model(seed=0)), config)


def contains_token(completion: Completion, token: int) -> float:
    return float(token in completion.token_ids)


def train(trainer: GRPOTrainer, reward, updates: int, first_seed: int = 0) -> None:
    for step in range(updates):
        group = trainer.policy.sample(
            PROMPT, 8, temperature=1.0, max_new_tokens=8, seed=first_seed + step
        )
        trainer.update(PROMPT, group, [reward(completion) for completion in group])


def rate(policy: TransformersPolicy, token: int) -> float:
    samples = policy.sample(PROMPT, 256, temperature=1.0, max_new_tokens=8, seed=12345)
    return sum(contains_token(c, token) for c in samples) / len(samples)


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- advantages --------------------------------------------------------------------------


def test_advantages_use_the_population_std():
    advantages = group_advantages([1.0, 0.0, 0.0], eta=0.05, clip=3.0)
    expected = [math.sqrt(2), -1 / math.sqrt(2), -1 / math.sqrt(2)]  # sample std: 1.1547, ...
    assert advantages.tolist() == pytest.approx(expected, abs=1e-6)


def test_eta_floors_the_std_of_a_near_constant_group():
    advantages = group_advantages([0.5, 0.52], eta=0.05, clip=3.0)  # std 0.01 < eta
    assert advantages.tolist() == pytest.approx([-0.2, 0.2], abs=1e-5)


def test_advantages_are_clipped():
    advantages = group_advantages([1.0] + [0.0] * 19, eta=0.05, clip=3.0)  # raw z = 4.36
    assert advantages[0].item() == pytest.approx(3.0)
    assert advantages[1:].tolist() == pytest.approx([-0.05 / math.sqrt(0.05 * 0.95)] * 19)


def test_equal_rewards_have_zero_advantage():
    assert group_advantages([0.3, 0.3, 0.3], eta=0.05, clip=3.0).tolist() == [0.0, 0.0, 0.0]


# --- loss --------------------------------------------------------------------------------


def clipping_case() -> tuple[torch.Tensor, ...]:
    # sequence 0: A = +1, ratios 1.5 (clipped to 1.3), 0.5 (kept: min picks it), 1.0
    # sequence 1: A = -1, ratios 0.5 (clipped to 0.7), 1.5 (kept); third position is padding
    ratios = torch.tensor([[1.5, 0.5, 1.0], [0.5, 1.5, 1.0]])
    logp = ratios.log()
    logp[1, 2] = 5.0  # padding must be ignored whatever it holds
    logp.requires_grad_(True)
    old_logp = torch.zeros(2, 3)
    advantages = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    return logp, old_logp, advantages, mask


def test_clipped_surrogate_on_both_sides_with_per_sequence_means():
    logp, old_logp, advantages, mask = clipping_case()
    loss, stats = grpo_loss(logp, old_logp, logp.detach(), advantages, mask, epsilon=0.3, beta=0)
    sequence_0 = (1.3 + 0.5 + 1.0) / 3
    sequence_1 = (-0.7 - 1.5) / 2
    assert loss.item() == pytest.approx(-(sequence_0 + sequence_1) / 2)  # not the token mean
    assert loss.item() != pytest.approx(-(1.3 + 0.5 + 1.0 - 0.7 - 1.5) / 5)
    assert stats["clip_fraction"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert stats["kl"] == pytest.approx(0.0)


def test_clipped_tokens_get_no_gradient():
    logp, old_logp, advantages, mask = clipping_case()
    loss, _ = grpo_loss(logp, old_logp, logp.detach(), advantages, mask, epsilon=0.3, beta=0)
    loss.backward()
    # d(-loss)/d logp = A * ratio / (G * length) where the unclipped term is the minimum
    expected = torch.tensor([[0.0, -0.5 / 6, -1.0 / 6], [0.0, 1.5 / 4, 0.0]])
    assert torch.allclose(logp.grad, expected)


def test_k3_kl_penalty():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref_logp = torch.log(torch.tensor([[0.25, 0.5]]))
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss, stats = grpo_loss(logp, logp, ref_logp, torch.zeros(1), mask, epsilon=0.3, beta=0.02)
    kl = [0.5 - math.log(0.5) - 1, 2.0 - math.log(2.0) - 1]  # exp(d) - d - 1, d = ref - logp
    assert stats["kl"] == pytest.approx(sum(kl) / 2)
    assert loss.item() == pytest.approx(0.02 * sum(kl) / 2)


def test_sequences_of_different_length_weigh_the_same():
    logp = torch.zeros(2, 10)
    old_logp = torch.zeros(2, 10)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :10] = True
    mask[1, :1] = True
    loss, _ = grpo_loss(logp, old_logp, logp, torch.tensor([2.0, -1.0]), mask, 0.3, 0.02)
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)


# --- trainer -----------------------------------------------------------------------------


def test_zero_variance_groups_are_skipped_and_counted():
    trainer = make_trainer()
    before = trainer.policy.adapter_state()
    group = trainer.policy.sample(PROMPT, 3, max_new_tokens=6, seed=0)
    for rewards in ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]):
        stats = trainer.update(PROMPT, group, rewards)
        assert stats.skipped and stats.steps == 0 and stats.version == 0
    assert trainer.skipped == 2 and trainer.updates == 0
    assert same_state(trainer.policy.adapter_state(), before)


def test_update_takes_epochs_steps_and_bumps_the_version():
    trainer = make_trainer()
    group = trainer.policy.sample(PROMPT, 3, max_new_tokens=6, seed=0)
    stats = trainer.update(PROMPT, group, [1.0, 0.0, 0.5])
    assert not stats.skipped
    assert stats.steps == 3 and stats.version == 1 and trainer.policy.version == 1
    assert stats.advantages == pytest.approx(group_advantages([1.0, 0.0, 0.5], 0.05, 3.0).tolist())
    assert stats.grad_norm > 0 and stats.kl >= 0 and stats.seconds > 0


def test_base_weights_stay_bitwise_identical():
    trainer = make_trainer()
    model = trainer.policy.model.get_base_model()
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    initial_adapter = trainer.policy.adapter_state()
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in trainer.policy.trainable_parameters()}

    x = trainer.policy.tokenizer.convert_tokens_to_ids("x")
    train(trainer, lambda c: contains_token(c, x), updates=8)

    assert trainer.updates > 0
    assert not same_state(trainer.policy.adapter_state(), initial_adapter)
    after = {n: p.detach() for n, p in model.named_parameters() if "lora_" not in n}
    assert same_state(after, base)


def test_reset_restores_the_start_and_problems_share_nothing():
    trainer = make_trainer(replace(CONFIG, ref_refresh_every=2))
    initial = trainer.policy.adapter_state()
    x, y = trainer.policy.tokenizer.convert_tokens_to_ids(["x", "y"])
    train(trainer, lambda c: contains_token(c, x), updates=6)  # problem 1
    assert trainer.optimizer.state and trainer.reference is not None

    trainer.reset()
    assert same_state(trainer.policy.adapter_state(), initial)
    assert trainer.policy.version == 0 and trainer.updates == 0 and trainer.skipped == 0
    assert not trainer.optimizer.state and trainer.reference is None
    train(trainer, lambda c: contains_token(c, y), updates=4, first_seed=100)

    fresh = make_trainer(replace(CONFIG, ref_refresh_every=2))
    train(fresh, lambda c: contains_token(c, y), updates=4, first_seed=100)
    assert same_state(trainer.policy.adapter_state(), fresh.policy.adapter_state())


def test_reference_is_the_base_then_a_copy_refreshed_every_n_updates():
    trainer = make_trainer(replace(CONFIG, ref_refresh_every=2))
    groups = [trainer.policy.sample(PROMPT, 3, max_new_tokens=6, seed=s) for s in range(3)]
    trainer.update(PROMPT, groups[0], [1.0, 0.0, 0.0])
    assert trainer.reference is None
    trainer.update(PROMPT, groups[1], [1.0, 0.0, 0.0])
    assert same_state(trainer.reference, trainer.policy.adapter_state())
    refreshed = trainer.reference
    trainer.update(PROMPT, groups[2], [1.0, 0.0, 0.0])
    assert trainer.reference is refreshed
    assert not same_state(trainer.reference, trainer.policy.adapter_state())


def test_old_logprobs_come_from_the_training_model_not_the_sampler():
    honest, tampered = make_trainer(), make_trainer()
    group = honest.policy.sample(PROMPT, 4, max_new_tokens=6, seed=0)
    forged = [replace(c, logprobs=[0.0] * len(c.logprobs)) for c in group]
    honest.update(PROMPT, group, [1.0, 0.0, 0.0, 1.0])
    tampered.update(PROMPT, forged, [1.0, 0.0, 0.0, 1.0])
    assert same_state(honest.policy.adapter_state(), tampered.policy.adapter_state())


def test_update_rejects_a_group_from_another_prompt():
    trainer = make_trainer()
    group = trainer.policy.sample("a much longer prompt", 2, max_new_tokens=4, seed=0)
    with pytest.raises(ValueError, match="not sampled from this prompt"):
        trainer.update(PROMPT, group, [1.0, 0.0])
    with pytest.raises(ValueError, match="2 completions but 3 rewards"):
        trainer.update(PROMPT, group, [1.0, 0.0, 0.0])


# --- learning ----------------------------------------------------------------------------


def test_grpo_raises_the_probability_of_the_rewarded_behaviour():
    trainer = make_trainer()
    x = trainer.policy.tokenizer.convert_tokens_to_ids("x")
    before = rate(trainer.policy, x)
    train(trainer, lambda c: contains_token(c, x), updates=12)
    after = rate(trainer.policy, x)
    assert before < 0.15
    assert after > before + 0.3


def test_rewarding_the_opposite_lowers_it():
    trainer = make_trainer()
    x = trainer.policy.tokenizer.convert_tokens_to_ids("x")
    before = rate(trainer.policy, x)
    train(trainer, lambda c: 1.0 - contains_token(c, x), updates=12)
    assert rate(trainer.policy, x) < before / 2


def test_equal_rewards_leave_the_policy_unchanged():
    trainer = make_trainer()
    x = trainer.policy.tokenizer.convert_tokens_to_ids("x")
    before = rate(trainer.policy, x)
    train(trainer, lambda c: 1.0, updates=12)
    assert trainer.skipped == 12
    assert rate(trainer.policy, x) == before
