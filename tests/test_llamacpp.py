"""The llama.cpp rollout engine: agreement with transformers, the adapter really hot-swapped."""

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pot.cli import app
from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import LoraPolicy
from pot.policy.engines import (
    EngineError,
    EngineOptions,
    is_engine_option,
    load_policy,
    resolve_engine,
)
from pot.policy.gguf_lora import permute_rows, write_gguf_lora
from pot.policy.llamacpp_engine import LlamaCppConfig, LlamaCppEngine, _logprob
from pot.policy.models import gguf_path
from pot.policy.tiny import tiny_random_model
from pot.prompts import build_prompt
from pot.tasks.mbpp import load_mbpp

# Over 640 greedy positions on 20 MBPP prompts, the gap between the top two tokens of the
# training model differed from llama.cpp's gap for the same two tokens by 0.12 nats (median),
# 0.51 (99th percentile) and 0.67 at most: Q4_1 weights are the same on both sides, but
# llama.cpp also quantizes activations (Q8) in its matrix products. A divergence where the
# training model prefers its own token by less than this is a near-tie that quantization
# explains; a wrong adapter conversion makes llama.cpp pick tokens far down the list.
TIE_GAP = 0.75
AGREEMENT_TASKS = ["mbpp/1", "mbpp/2", "mbpp/3", "mbpp/4", "mbpp/5", "mbpp/6"]
MARKER = "ZEBRA"
SHORT_PROMPT = "Write a python function that returns the sum of a list."


@pytest.fixture(scope="module")
def policy() -> Iterator[LoraPolicy]:
    """One thread on each side: on 2 shared cores a second thread mostly waits at barriers
    (measured here under load: a transformers forward took 11 s on 2 threads, 0.5 s on 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_policy("default", "llamacpp", options={"llamacpp.threads": "1"})
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    tasks = {task.id: task for task in load_mbpp("prompt")}
    return [build_prompt(tasks[task_id]) for task_id in AGREEMENT_TASKS]


def greedy_divergence(policy: LoraPolicy, prompt: str) -> tuple[list[int], int | None, float]:
    """llama.cpp's first 32 greedy tokens, the index where transformers' greedy decoding first
    differs (None: nowhere) and by how many nats transformers prefers its own token there.

    Transformers is teacher-forced on llama.cpp's tokens: while the prefixes agree its argmax
    at each position is exactly what its own greedy decoding would choose.
    """
    tokens = policy.greedy(prompt, max_new_tokens=32, stop_at_fence=False).token_ids
    prompt_ids = policy.encode_prompt(prompt)
    with torch.no_grad():
        logits = policy.learner.model(torch.tensor([prompt_ids + tokens])).logits[0]
    for i, token in enumerate(tokens):
        scores = logits[len(prompt_ids) - 1 + i]
        if scores.argmax().item() != token:
            return tokens, i, (scores.max() - scores[token]).item()
    return tokens, None, 0.0


def check_agreement(policy: LoraPolicy, prompts: list[str]) -> list[list[int]]:
    outcomes = [greedy_divergence(policy, prompt) for prompt in prompts]
    gaps = [gap for _, at, gap in outcomes if at is not None]
    print(
        f"divergences {len(gaps)}/{len(prompts)}, at {[at for _, at, _ in outcomes]}, "
        f"gaps {[round(gap, 3) for gap in gaps]}"
    )
    assert all(gap < TIE_GAP for gap in gaps), gaps
    # measured: 4 of these 6 prompts agree on all 32 tokens before the update, 3 after
    assert len(gaps) <= len(prompts) // 2
    return [tokens for tokens, _, _ in outcomes]


def push_toward(policy: LoraPolicy, prompt: str, target: str, steps: int = 12) -> None:
    """Supervised steps on the LoRA adapter only, then count it as an applied update."""
    prompt_ids = policy.encode_prompt(prompt)
    target_ids = policy.learner.tokenizer(target, add_special_tokens=False).input_ids
    optimizer = torch.optim.Adam(policy.learner.trainable_parameters(), lr=1e-2)
    for _ in range(steps):
        logp, mask = policy.learner.sequence_logprobs(prompt_ids, [target_ids])
        loss = -(logp.sum() / mask.sum())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.version += 1


def marker_rate(policy: LoraPolicy, prompt: str) -> float:
    samples = policy.sample(prompt, 4, max_new_tokens=12, seed=0)
    return sum(MARKER in sample.text for sample in samples) / len(samples)


@pytest.mark.slow
def test_lora_b_rows_of_q_and_k_follow_llamacpp_weight_layout(policy):
    """transformers un-permutes attn_q / attn_k when it loads the GGUF file; permute_rows
    redoes exactly that, so LoRA B rows land on the rows llama.cpp multiplies."""
    base = policy.engine.gguf_base
    reader = gguf.GGUFReader(policy.engine.decoder.path)
    stored = {tensor.name: tensor for tensor in reader.tensors}
    attention = policy.learner.model.model.layers[0].self_attn
    for projection, gguf_name, heads in [
        (attention.q_proj, "blk.0.attn_q.weight", base.head_count),
        (attention.k_proj, "blk.0.attn_k.weight", base.head_count_kv),
    ]:
        tensor = stored[gguf_name]
        dequantized = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        permuted = permute_rows(projection.weight.detach(), heads)
        assert torch.equal(permuted, torch.from_numpy(np.ascontiguousarray(dequantized)))
        assert not torch.equal(projection.weight.detach(), permuted)


@pytest.mark.slow
def test_converted_adapter_moves_llamacpp_logits_like_the_training_model(policy, prompts):
    GRPOTrainer(policy, GRPOConfig())  # a fresh adapter: lora_B = 0, the base model
    prompt_ids = policy.encode_prompt(prompts[0])
    base, llama_base = both_logits(policy, prompt_ids)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in policy.learner.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    trained, llama_trained = both_logits(policy, prompt_ids)
    policy.reset()
    effect, llama_effect = trained - base, llama_trained - llama_base
    assert np.abs(effect).max() > 1.0  # the adapter matters...
    # ...and moves llama.cpp's logits the same way: measured 0.95, and -0.2 when the q/k
    # LoRA rows are left unpermuted
    assert np.corrcoef(effect, llama_effect)[0, 1] > 0.9


def both_logits(policy: LoraPolicy, prompt_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Next-token logits after the prompt: the training model's, then llama.cpp's."""
    with torch.no_grad():
        training = policy.learner.model(torch.tensor([prompt_ids])).logits[0, -1].numpy()
    policy.engine.sync_adapter(policy.learner)
    recorded = []

    def record(rows: list[int], logits: np.ndarray) -> list[int]:
        recorded.append(logits[0])
        return [0] * len(rows)

    policy.engine.decoder.generate(prompt_ids, 1, 1, record, lambda row, token: True)
    return training, recorded[0]


@pytest.mark.slow
def test_greedy_agrees_with_transformers_before_and_after_a_grpo_update(policy, prompts):
    # lr 1e-3 instead of the paper's 1e-4, so that one update visibly moves greedy decoding
    trainer = GRPOTrainer(policy, GRPOConfig(lr=1e-3))
    before = check_agreement(policy, prompts)
    group = policy.sample(SHORT_PROMPT, 3, max_new_tokens=16, seed=0)
    stats = trainer.update(SHORT_PROMPT, group, [1.0, 0.0, 0.0])
    assert not stats.skipped and policy.version == 1
    after = check_agreement(policy, prompts)
    assert after != before  # llama.cpp samples from the updated adapter
    assert len(policy.engine.swap_seconds) >= 2
    trainer.reset()


@pytest.mark.slow
def test_llamacpp_samples_the_marker_only_after_the_adapter_learned_it(policy):
    prompt = SHORT_PROMPT
    GRPOTrainer(policy, GRPOConfig())
    assert marker_rate(policy, prompt) == 0.0
    push_toward(policy, prompt, f"```python\n# {MARKER}\nprint('{MARKER}')\n```")
    swaps = len(policy.engine.swap_seconds)
    assert marker_rate(policy, prompt) >= 0.75
    assert len(policy.engine.swap_seconds) == swaps + 1  # converted and swapped in once
    learned = policy.snapshot()
    policy.reset()
    assert marker_rate(policy, prompt) == 0.0  # reset reaches llama.cpp too
    policy.restore(learned)
    assert marker_rate(policy, prompt) >= 0.75
    policy.reset()


@pytest.mark.slow
def test_siblings_share_one_prompt_evaluation_and_are_seeded(policy):
    GRPOTrainer(policy, GRPOConfig())
    prompt = SHORT_PROMPT
    prompt_ids = policy.encode_prompt(prompt)
    policy.engine.sync_adapter(policy.learner)
    policy.engine.decoder.cached = []  # no prefix to reuse: the whole prompt is decoded
    decoded = policy.engine.decoder.decoded_tokens
    first = policy.sample(prompt, 3, max_new_tokens=12, seed=7)
    # the prompt once, then one token per live sibling per step (a last token is not fed)
    expected = len(prompt_ids) + sum(len(c.token_ids) - 1 for c in first)
    assert policy.engine.decoder.decoded_tokens - decoded == expected
    again = policy.sample(prompt, 3, max_new_tokens=12, seed=7)
    other = policy.sample(prompt, 3, max_new_tokens=12, seed=8)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]
    # log-probs come from llama.cpp's own logits (free, so also without logprobs=True) and
    # match the training model's to what quantization allows (benchmarks/logprob_agreement.py
    # measured per-token |diff| 0.025 nats on average, 0.42 at most)
    unscored = policy.sample(prompt, 3, max_new_tokens=12, seed=7, logprobs=False)
    assert [c.token_ids for c in unscored] == [c.token_ids for c in first]
    recomputed = policy.completion_logprobs(prompt_ids, [c.token_ids for c in first])
    for completion, logprobs in zip(first, recomputed, strict=True):
        assert completion.prompt_tokens == len(prompt_ids)
        assert len(completion.logprobs) == len(completion.token_ids)
        assert completion.logprobs == pytest.approx(logprobs.tolist(), abs=0.6)
    # on request they come from the training model instead, and the pass is skipped when unused
    policy.engine.config.logprobs_from = "transformers"
    try:
        scored = policy.sample(prompt, 3, max_new_tokens=12, seed=7)
        skipped = policy.sample(prompt, 3, max_new_tokens=12, seed=7, logprobs=False)
    finally:
        policy.engine.config.logprobs_from = "llamacpp"
    assert all(c.logprobs == [] for c in skipped)
    for completion, logprobs in zip(scored, recomputed, strict=True):
        assert completion.logprobs == pytest.approx(logprobs.tolist(), abs=1e-5)
    # every sibling continues the shared prompt cache as the single-sequence greedy does
    greedy = policy.greedy(prompt, max_new_tokens=12)
    coldest = policy.sample(prompt, 3, max_new_tokens=12, temperature=1e-6, seed=0)
    assert all(c.token_ids == greedy.token_ids for c in coldest)


@pytest.mark.slow
def test_an_adapter_that_adds_nothing_is_not_loaded_into_llamacpp(policy):
    GRPOTrainer(policy, GRPOConfig())  # fresh: LoRA B = 0
    policy.engine.sync_adapter(policy.learner)
    assert not policy.engine.decoder.adapter
    push_toward(policy, SHORT_PROMPT, "```python\nprint(1)\n```", steps=1)
    policy.engine.sync_adapter(policy.learner)
    assert policy.engine.decoder.adapter  # a GGUF LoRA file, loaded
    policy.reset()
    policy.engine.sync_adapter(policy.learner)
    assert not policy.engine.decoder.adapter


def next_token_logits(policy: LoraPolicy, prompt: str) -> tuple[list[int], np.ndarray]:
    ids, seen = policy.encode_prompt(prompt), []

    def pick(rows, logits):
        seen.append(logits[0].copy())
        return [int(logits[0].argmax())]

    policy.engine.decoder.generate(ids, 1, 1, pick, lambda row, token: True)
    return ids, seen[0]


@pytest.mark.slow
def test_a_prompt_extending_the_last_one_decodes_only_its_new_tokens(policy):
    longer = SHORT_PROMPT + " An empty list sums to 0, and the list may hold floats."
    policy.engine.sync_adapter(policy.learner)
    policy.engine.decoder.cached = []
    short_ids, _ = next_token_logits(policy, SHORT_PROMPT)
    decoded = policy.engine.decoder.decoded_tokens
    long_ids, warm = next_token_logits(policy, longer)
    shared = next(i for i, (a, b) in enumerate(zip(short_ids, long_ids, strict=False)) if a != b)
    assert shared > 10
    assert policy.engine.decoder.decoded_tokens - decoded == len(long_ids) - shared
    policy.engine.decoder.cached = []
    _, cold = next_token_logits(policy, longer)
    assert policy.engine.decoder.decoded_tokens - decoded == 2 * len(long_ids) - shared
    print(f"max |warm - cold| logit: {np.abs(warm - cold).max():.2e}")
    assert warm.argmax() == cold.argmax()
    np.testing.assert_allclose(warm, cold, atol=1e-2)
    policy.reset()  # a new problem starts from a cold cache
    assert policy.engine.decoder.cached == []


@pytest.mark.slow
def test_gguf_lora_file_follows_llamacpp_conventions(policy, tmp_path):
    GRPOTrainer(policy, GRPOConfig())
    path = tmp_path / "adapter.gguf"
    write_gguf_lora(policy.learner.model, policy.engine.gguf_base, path)
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 16.0
    shapes = {tensor.name: tuple(tensor.shape) for tensor in reader.tensors}
    layers = policy.engine.gguf_base.block_count
    assert len(shapes) == layers * 7 * 2  # q k v o gate up down, A and B each
    # GGUF lists dimensions innermost first: lora_a is [r, in], lora_b is [out, r]
    assert shapes["blk.0.attn_k.weight.lora_a"] == (576, 8)
    assert shapes["blk.0.attn_k.weight.lora_b"] == (8, 192)
    assert shapes["blk.0.ffn_down.weight.lora_a"] == (1536, 8)


def test_sampled_token_logprob_is_the_log_softmax_of_the_logits():
    scores = np.random.default_rng(0).normal(size=50).astype(np.float32) * 10
    expected = torch.log_softmax(torch.from_numpy(scores).double(), dim=-1)
    assert [_logprob(scores, token) for token in (0, 7, 49)] == pytest.approx(
        expected[[0, 7, 49]].tolist(), abs=1e-9
    )


def test_unknown_logprob_source_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown log-prob source 'gpu'"):
        LlamaCppEngine(Path("unused.gguf"), LlamaCppConfig(logprobs_from="gpu"))


def test_engine_choice():
    assert resolve_engine("default") == "llamacpp"
    assert resolve_engine("default", "transformers") == "transformers"
    assert resolve_engine("HuggingFaceTB/SmolLM2-135M-Instruct") == "transformers"
    with pytest.raises(EngineError, match="unknown engine 'fast'"):
        resolve_engine("default", "fast")
    with pytest.raises(EngineError, match="has no GGUF file"):
        resolve_engine("/some/model/dir", "llamacpp")
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="needs a CUDA GPU and vLLM"):
            resolve_engine("default", "vllm")


def test_a_model_without_gguf_cannot_load_in_llamacpp(tmp_path):
    model, tokenizer = tiny_random_model(seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert resolve_engine(str(tmp_path)) == "transformers"
    with pytest.raises(ValueError, match="no GGUF file"):
        load_policy(str(tmp_path), "llamacpp")


@pytest.mark.parametrize(
    "args", [["solve", "mbpp:validation/523"], ["bench", "--out", "never-written"]]
)
def test_bad_engine_is_one_clear_error_line(args):
    result = CliRunner().invoke(app, [*args, "--engine", "warp"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown engine 'warp'"), result.output


def test_engine_options_are_scoped_by_engine_and_checked():
    options = EngineOptions.parse(
        {
            "llamacpp.threads": "2",
            "llamacpp.logprobs_from": "transformers",
            "vllm.max_lora_rank": 32,
        }
    )
    assert (options.llamacpp.threads, options.llamacpp.logprobs_from) == (2, "transformers")
    assert options.vllm.max_lora_rank == 32
    assert is_engine_option("llamacpp.threads") and is_engine_option("vllm.max_lora_rank")
    assert not is_engine_option("search.k") and not is_engine_option("sandbox.timeout_s")
    for bad, message in [
        ({"llamacpp.thread": "2"}, "unknown option 'llamacpp.thread'"),
        ({"llamacpp.threads": "two"}, "'llamacpp.threads' takes an integer, not 'two'"),
        ({"llamacpp.threads": "-1"}, "llamacpp.threads must be 0"),
        ({"llamacpp.logprobs_from": "gpu"}, "unknown log-prob source 'gpu'"),
        ({"vllm.gpu_memory_utilization": "1.5"}, "between 0 and 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            EngineOptions.parse(bad)


def test_the_threads_option_reaches_llamacpp():
    engine = LlamaCppEngine(
        gguf_path("default"), EngineOptions.parse({"llamacpp.threads": 3}).llamacpp
    )
    assert engine.decoder.threads == 3


@pytest.mark.parametrize(
    "args", [["solve", "mbpp:validation/523"], ["bench", "--out", "never-written"]]
)
def test_bad_engine_option_is_one_clear_error_line(args):
    result = CliRunner().invoke(app, [*args, "--set", "llamacpp.threads=-1"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "llamacpp.threads must be 0 (torch's thread count) or more, not -1" in lines[0]
