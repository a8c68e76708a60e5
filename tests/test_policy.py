import ast

import pytest
import torch

from pot.evolve import GRPOConfig
from pot.policy import ModelNotFoundError, PromptTooLongError, TransformersPolicy, load_model
from pot.policy.tiny import tiny_random_model
from pot.policy.transformers_policy import _ClosingFenceStop
from pot.prompts import build_prompt, extract_code
from pot.tasks import Task

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def policy() -> TransformersPolicy:
    return TransformersPolicy(*tiny_random_model(seed=0))


def overfit(policy: TransformersPolicy, prompt: str, targets: list[str], steps: int = 150) -> None:
    """Train the whole tiny model until it writes the targets (equally often) after prompt."""
    prompt_ids = policy.encode_prompt(prompt)
    sequences = [policy.tokenizer(t, add_special_tokens=False).input_ids for t in targets]
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=3e-2)
    torch.manual_seed(0)
    for _ in range(steps):
        logp, mask = policy.sequence_logprobs(prompt_ids, sequences)
        loss = -(logp.sum(-1) / mask.sum(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.model.eval()


def test_loads_a_local_model_directory(policy, tmp_path):
    policy.model.save_pretrained(tmp_path)
    policy.tokenizer.save_pretrained(tmp_path)
    loaded = TransformersPolicy.load(str(tmp_path))
    ids = torch.tensor([policy.encode_prompt("hello")])
    assert loaded.encode_prompt("hello") == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, policy.model(ids).logits)


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
    assert policy.tokenizer.decode(ids) == "<user>hi\n<assistant>"
    assert policy.encode_prompt([{"role": "user", "content": "hi"}]) == ids


def test_without_chat_template_a_string_is_used_as_is(policy):
    policy.tokenizer.chat_template = None
    assert policy.tokenizer.decode(policy.encode_prompt("hi")) == "hi"
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
    assert completion.token_ids[-1] == policy.tokenizer.eos_token_id
    assert completion.finish_reason == "stop"


def test_fence_criterion_marks_rows_independently(policy):
    tokenizer = policy.tokenizer
    rows = ["```python\na\n```", "```python\nabcd\n```", "no fence here at all..."]
    criterion = _ClosingFenceStop(tokenizer, batch_size=3)
    ids = [tokenizer(row, add_special_tokens=False).input_ids for row in rows]
    width = max(len(row) for row in ids)
    padded = torch.tensor([row + [0] * (width - len(row)) for row in ids])
    for step in range(1, width + 1):
        done = criterion(padded[:, :step], scores=torch.empty(0))
    assert done.tolist() == [True, True, False]
    assert criterion.stop_lengths == [len(ids[0]), len(ids[1]), None]


def test_prompt_longer_than_the_context_is_one_clear_error():
    policy = TransformersPolicy(*tiny_random_model(seed=0, context_length=32))
    with pytest.raises(PromptTooLongError, match="context is 32"):
        policy.sample("x" * 40, 2, max_new_tokens=4)


def test_adapter_reset_snapshot_and_base_weights(policy):
    base = {name: p.detach().clone() for name, p in policy.model.named_parameters()}
    policy.attach_adapter(GRPOConfig().lora_config(), seed=3)
    assert all("lora_" in name for name, _ in policy.adapter_state().items())
    initial = policy.adapter_state()
    prompt_ids = policy.encode_prompt("abc")
    completion = [policy.tokenizer("def", add_special_tokens=False).input_ids]
    before = policy.completion_logprobs(prompt_ids, completion)[0]

    with torch.no_grad():
        for param in policy.trainable_parameters():
            param.add_(0.5)
    policy.version = 4
    changed = policy.completion_logprobs(prompt_ids, completion)[0]
    assert not torch.allclose(changed, before)
    with policy.adapter_weights(None):  # the base model
        assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], before)
    with policy.adapter_weights(initial):
        assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], before)
    assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], changed)

    snapshot = policy.snapshot()
    policy.reset()
    assert policy.version == 0
    assert all(torch.equal(policy.adapter_state()[k], v) for k, v in initial.items())
    policy.restore(snapshot)
    assert policy.version == 4
    assert torch.equal(policy.completion_logprobs(prompt_ids, completion)[0], changed)

    frozen = policy.model.get_base_model()
    for name, param in frozen.named_parameters():
        if "lora_" not in name:
            assert not param.requires_grad
            assert torch.equal(param, base[name.replace(".base_layer", "")])


def test_the_same_adapter_seed_gives_the_same_initial_adapter(policy):
    policy.attach_adapter(GRPOConfig().lora_config(), seed=5)
    first = policy.adapter_state()
    policy.attach_adapter(GRPOConfig().lora_config(), seed=5)
    second = policy.adapter_state()
    policy.attach_adapter(GRPOConfig().lora_config(), seed=6)
    third = policy.adapter_state()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


@pytest.mark.slow
def test_embedded_default_writes_a_parsable_program():
    policy = TransformersPolicy.load("default")
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
