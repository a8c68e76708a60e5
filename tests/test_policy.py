import ast
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import (
    Completion,
    Learner,
    LoraPolicy,
    ModelNotFoundError,
    PromptTooLongError,
    load_model,
)
from pot.policy.engines import load_policy
from pot.policy.fence import StopRule
from pot.policy.tiny import tiny_random_model
from pot.policy.transformers_engine import _StopCriterion
from pot.policy.vllm_engine import VLLMConfig, VLLMEngine
from pot.prompts import build_prompt, extract_code
from pot.tasks import Task

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def policy() -> LoraPolicy:
    return LoraPolicy(Learner(*tiny_random_model(seed=0)))


def overfit(policy: LoraPolicy, prompt: str, targets: list[str], steps: int = 150) -> None:
    """Train the whole tiny model until it writes the targets (equally often) after prompt."""
    prompt_ids = policy.encode_prompt(prompt)
    sequences = [policy.learner.tokenizer(t, add_special_tokens=False).input_ids for t in targets]
    optimizer = torch.optim.Adam(policy.learner.model.parameters(), lr=3e-2)
    torch.manual_seed(0)
    for _ in range(steps):
        logp, mask = policy.learner.sequence_logprobs(prompt_ids, sequences)
        loss = -(logp.sum(-1) / mask.sum(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.learner.model.eval()


def test_loads_a_local_model_directory(policy, tmp_path):
    policy.learner.model.save_pretrained(tmp_path)
    policy.learner.tokenizer.save_pretrained(tmp_path)
    loaded = load_policy(str(tmp_path), "transformers", "cpu")
    ids = torch.tensor([policy.encode_prompt("hello")])
    assert loaded.encode_prompt("hello") == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(loaded.learner.model(ids).logits, policy.learner.model(ids).logits)


@pytest.mark.parametrize("name", ["/no/such/model/dir", "./missing-model"])
def test_missing_directory_is_one_clear_error(name):
    with pytest.raises(ModelNotFoundError, match="no such directory") as error:
        load_model(name)
    assert repr(name) in str(error.value)
    assert "'smollm2-135m'" in str(error.value) and "'default'" in str(error.value)


def test_directory_without_a_model_is_one_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="cannot load model") as error:
        load_model(str(tmp_path))
    assert str(tmp_path) in str(error.value)
    assert error.value.__cause__ is None


def test_prompt_string_becomes_a_user_turn_of_the_chat_template(policy):
    ids = policy.encode_prompt("hi")
    assert policy.learner.tokenizer.decode(ids) == "<user>hi\n<assistant>"
    assert policy.encode_prompt([{"role": "user", "content": "hi"}]) == ids


def test_without_chat_template_a_string_is_used_as_is(policy):
    policy.learner.tokenizer.chat_template = None
    assert policy.learner.tokenizer.decode(policy.encode_prompt("hi")) == "hi"
    with pytest.raises(ValueError, match="chat template"):
        policy.encode_prompt([{"role": "user", "content": "hi"}])


def test_sample_is_seeded_and_batched(policy):
    first = policy.sample("a", 4, max_new_tokens=12, seed=7)
    again = policy.sample("a", 4, max_new_tokens=12, seed=7)
    other = policy.sample("a", 4, max_new_tokens=12, seed=8)
    assert len(first) == 4
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]
    assert len({tuple(c.token_ids) for c in first}) > 1  # rows are sampled independently
    prompt_tokens = len(policy.encode_prompt("a"))
    for completion in first:
        assert completion.prompt_tokens == prompt_tokens
        assert 1 <= len(completion.token_ids) <= 12
        assert len(completion.logprobs) == len(completion.token_ids)
        assert completion.finish_reason == ("length" if len(completion.token_ids) == 12 else "stop")


def test_sampling_logprobs_equal_the_training_path_logprobs(policy):
    completions = policy.sample("abc", 3, max_new_tokens=16, seed=1)
    prompt_ids = policy.encode_prompt("abc")
    recomputed = policy.completion_logprobs(prompt_ids, [c.token_ids for c in completions])
    for completion, logprobs in zip(completions, recomputed, strict=True):
        assert torch.allclose(torch.tensor(completion.logprobs), logprobs, atol=1e-4)
        assert completion.mean_logprob == pytest.approx(logprobs.mean().item(), abs=1e-4)


def test_each_sequence_stops_at_its_own_closing_fence(policy):
    short, long = "```python\nx\n```tail", "```python\nlonger = 1\n```tail"
    overfit(policy, "p", [short, long])
    completions = policy.sample("p", 8, temperature=1.0, max_new_tokens=40, seed=0)
    texts = {c.text for c in completions}
    assert texts == {"```python\nx\n```", "```python\nlonger = 1\n```"}
    for completion in completions:
        assert completion.finish_reason == "stop"
        assert len(completion.token_ids) == len(completion.text)  # one token per character
        assert extract_code(completion.text) in ("x\n", "longer = 1\n")


def test_greedy_stops_at_eos_and_hides_it_from_the_text(policy):
    overfit(policy, "p", ["x = 1<eos>"])
    completion = policy.greedy("p", max_new_tokens=30)
    assert completion.text == "x = 1"
    assert completion.token_ids[-1] == policy.learner.tokenizer.eos_token_id
    assert completion.finish_reason == "stop"


def test_fence_criterion_marks_rows_independently(policy):
    tokenizer = policy.learner.tokenizer
    rows = ["```python\na\n```", "```python\nabcd\n```", "no fence here at all..."]
    stop = StopRule(tokenizer, policy.learner.eos_token_ids, 3, fence=True)
    criterion = _StopCriterion(stop)
    ids = [tokenizer(row, add_special_tokens=False).input_ids for row in rows]
    width = max(len(row) for row in ids)
    padded = torch.tensor([row + [0] * (width - len(row)) for row in ids])
    for step in range(1, width + 1):
        done = criterion(padded[:, :step], scores=torch.empty(0))
    assert done.tolist() == [True, True, False]
    assert stop.lengths == [len(ids[0]), len(ids[1]), None]
    assert stop.at_fence == [True, True, False]


def test_prompt_longer_than_the_context_is_one_clear_error():
    policy = LoraPolicy(Learner(*tiny_random_model(seed=0, context_length=32)))
    with pytest.raises(PromptTooLongError, match="context is 32"):
        policy.sample("x" * 40, 2, max_new_tokens=4)


def test_adapter_reset_snapshot_and_base_weights(policy):
    base = {name: p.detach().clone() for name, p in policy.learner.model.named_parameters()}
    policy.learner.attach_adapter(GRPOConfig().lora_config(), seed=3)
    assert all("lora_" in name for name, _ in policy.learner.adapter_state().items())
    initial = policy.learner.adapter_state()
    prompt_ids = policy.encode_prompt("abc")
    completion = [policy.learner.tokenizer("def", add_special_tokens=False).input_ids]
    before = policy.completion_logprobs(prompt_ids, completion)[0]

    with torch.no_grad():
        for param in policy.learner.trainable_parameters():
            param.add_(0.5)
    policy.version = 4
    changed = policy.completion_logprobs(prompt_ids, completion)[0]
    assert not torch.allclose(changed, before)
    with policy.learner.adapter_weights(None):  # the base model
        assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], before)
    with policy.learner.adapter_weights(initial):
        assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], before)
    assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], changed)

    snapshot = policy.snapshot()
    policy.reset()
    assert policy.version == 0
    assert all(torch.equal(policy.learner.adapter_state()[k], v) for k, v in initial.items())
    policy.restore(snapshot)
    assert policy.version == 4
    assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], changed)

    frozen = policy.learner.model.get_base_model()
    for name, param in frozen.named_parameters():
        if "lora_" not in name:
            assert not param.requires_grad
            assert torch.equal(param, base[name.replace(".base_layer", "")])


def test_the_same_adapter_seed_gives_the_same_initial_adapter(policy):
    learner = policy.learner
    learner.attach_adapter(GRPOConfig().lora_config(), seed=5)
    first, model = learner.adapter_state(), learner.model
    with torch.no_grad():  # a trained adapter: attaching the same one again must undo this
        for param in learner.trainable_parameters():
            param.add_(0.5)
    learner.attach_adapter(GRPOConfig().lora_config(), seed=5)
    second = learner.adapter_state()
    assert learner.model is model  # the same settings and seed: no second wrap
    learner.attach_adapter(GRPOConfig().lora_config(), seed=6)
    third = learner.adapter_state()
    learner.attach_adapter(GRPOConfig().lora_config(), seed=5)  # wrapped anew from seed 5
    fourth = learner.adapter_state()
    assert first.keys() == second.keys() == fourth.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(torch.equal(first[k], fourth[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)
    learner.attach_adapter(GRPOConfig(lora_r=4).lora_config(), seed=5)
    assert learner.adapter_state()[next(iter(first))].shape != first[next(iter(first))].shape


@pytest.mark.slow
def test_embedded_default_writes_a_parsable_program():
    policy = load_policy("default", "transformers", "cpu")
    task = Task(
        id="add",
        prompt="Write a python function to add two numbers a and b.\n"
        "Your code should pass this test:\nassert add(2, 3) == 5",
        entry_point="add",
    )
    completion = policy.greedy(build_prompt(task), max_new_tokens=256)
    program = extract_code(completion.text)
    ast.parse(program)
    assert "def add" in program


# --- vLLM engine logic, against a stand-in with vLLM's call signatures --------------------


class StandInVLLM:
    """vLLM's offline API as VLLMEngine calls it: LLM(model=..., enable_lora=...,
    max_lora_rank=..., enable_prefix_caching=..., gpu_memory_utilization=...),
    LLM.generate(prompts, sampling_params, lora_request=..., use_tqdm=...),
    SamplingParams(n, seed, max_tokens, temperature, ..., stop, include_stop_str_in_output) and
    LoRARequest(lora_name, lora_int_id, lora_path). Sibling i continues `scripts[i]` (a row
    resumed from its tokens so far continues the script they begin; the scripts must differ
    before their first stop string), stopping as vLLM does:
    at a stop string in the request's new text, at eos, or at max_tokens."""

    def __init__(self, tokenizer, prompt_ids: list[int], scripts: list[str]) -> None:
        self.tokenizer, self.prompt_ids = tokenizer, prompt_ids
        eos = [tokenizer.eos_token_id]
        self.scripts = [tokenizer(s, add_special_tokens=False).input_ids + eos for s in scripts]
        self.calls: list[dict] = []
        self.SamplingParams = lambda **params: SimpleNamespace(**params)
        self.LoRARequest = lambda name, id_, path: SimpleNamespace(
            lora_name=name, lora_int_id=id_, lora_path=path
        )

    def LLM(self, **options):  # noqa: N802 - vLLM's class name
        self.options = options
        return self

    def generate(self, prompts, sampling_params, *, lora_request, use_tqdm):
        request = lora_request
        self.calls.append(
            {
                "rows": len(prompts),
                "lora": None if request is None else (request.lora_name, request.lora_int_id),
                "lora_files": request is not None and Path(request.lora_path).is_dir(),
            }
        )
        results = []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            done = prompt["prompt_token_ids"][len(self.prompt_ids) :]
            scripts = [s for s in self.scripts if s[: len(done)] == done]
            scripts = self.scripts[: params.n] if not done else scripts[:1]
            results.append(
                SimpleNamespace(outputs=[self._decode(s[len(done) :], params) for s in scripts])
            )
        return results

    def _decode(self, script: list[int], params) -> SimpleNamespace:
        tokens: list[int] = []
        for token in script[: params.max_tokens]:
            tokens.append(token)
            if token == self.tokenizer.eos_token_id:
                return SimpleNamespace(token_ids=tokens, finish_reason="stop", stop_reason=None)
            text = self.tokenizer.decode(tokens)
            hit = next((stop for stop in getattr(params, "stop", []) if stop in text), None)
            if hit is not None:
                return SimpleNamespace(token_ids=tokens, finish_reason="stop", stop_reason=hit)
        return SimpleNamespace(token_ids=tokens, finish_reason="length", stop_reason=None)


def vllm_policy(scripts: list[str], prompt: str = "a", **config) -> tuple[LoraPolicy, StandInVLLM]:
    learner = Learner(*tiny_random_model(seed=0))
    api = StandInVLLM(learner.tokenizer, learner.encode_prompt(prompt), scripts)
    return LoraPolicy(learner, VLLMEngine("tiny", VLLMConfig(**config), api=api)), api


def test_vllm_stops_at_the_closing_fence_and_counts_every_generated_token():
    scripts = [
        "Sure:\n```python\nx = 1\n```\nThat sets x, and this line is never decoded.",
        "```python\ny = 2\n```",
        "no code at all",
        "Here:\n```python\nwhile True:\n    pass  # never closed, runs out of tokens",
    ]
    policy, api = vllm_policy(scripts, max_lora_rank=8, gpu_memory_utilization=0.3)
    assert api.options["max_lora_rank"] == 8 and api.options["gpu_memory_utilization"] == 0.3
    completions = policy.sample("a", 4, max_new_tokens=40, seed=0)
    texts = [c.text for c in completions]
    assert texts[:3] == ["Sure:\n```python\nx = 1\n```", "```python\ny = 2\n```", "no code at all"]
    assert [c.finish_reason for c in completions] == ["stop", "stop", "stop", "length"]
    assert len(completions[3].token_ids) == 40
    # rounds: all four to their opening fence (or eos), then the three open blocks continue
    assert [call["rows"] for call in api.calls] == [1, 3]
    assert policy.engine.generated_tokens == sum(len(c.token_ids) for c in completions)
    assert all(len(c.logprobs) == len(c.token_ids) for c in completions)
    plain = policy.sample("a", 1, max_new_tokens=80, stop_at_fence=False)[0]
    assert plain.text == scripts[0] and plain.finish_reason == "stop"  # decoded to eos


def test_vllm_serves_each_adapter_version_under_a_fresh_name_and_id():
    policy, api = vllm_policy(["x = 1"])  # no fence: one generate call per sample
    policy.sample("a", 1, max_new_tokens=8)
    assert api.calls[-1]["lora"] is None  # no adapter: the base model
    trainer = GRPOTrainer(policy, GRPOConfig(lr=1e-2))
    policy.sample("a", 1, max_new_tokens=8)
    policy.sample("a", 1, max_new_tokens=8)  # unchanged: the same version again
    group = [Completion("x", [5, 6, 7], [], len(policy.encode_prompt("a")), "stop")] * 2
    trainer.update("a", [group[0], replace(group[1], token_ids=[8, 9])], [1.0, 0.0])
    first_path = Path(policy.engine.workdir.name) / "v1"
    policy.sample("a", 1, max_new_tokens=8)
    trainer.reset()  # the initial weights again, yet a new version: id 1 is retired
    policy.sample("a", 1, max_new_tokens=8)
    served = [call["lora"] for call in api.calls[1:]]
    assert served == [("pot-adapter-1", 1)] * 2 + [("pot-adapter-2", 2), ("pot-adapter-3", 3)]
    assert all(call["lora_files"] for call in api.calls[1:])
    assert not first_path.exists() and not (first_path.parent / "v2").exists()


def test_vllm_rejects_an_adapter_above_its_rank_cap():
    policy, _ = vllm_policy(["x"], max_lora_rank=8)
    GRPOTrainer(policy, GRPOConfig(lora_r=16, lora_alpha=32))
    with pytest.raises(ValueError, match="LoRA rank 16 and vLLM was started with max_lora_rank 8"):
        policy.sample("a", 1, max_new_tokens=4)
