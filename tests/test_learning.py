"""Learning made visible: every sibling group's GRPO update in the trace as the trainer computed
it, each node's finish reason and token counts, root widening, `pot solve`'s update lines, and
a tiny model whose sampled programs change after an update inside `run_search`."""

import math
from dataclasses import asdict

import pytest

from pot.budget import Budget, Ledger
from pot.cli import print_progress
from pot.evolve.grpo import GRPOConfig, GRPOTrainer
from pot.methods import method_config, solve
from pot.policy import Completion, Learner, LoraPolicy
from pot.policy.tiny import tiny_random_model
from pot.search import SearchConfig, finish_reason, path_prompt, run_search
from pot.tasks import Task, Test
from tests.scripted import ScriptedPolicy
from tests.test_pot_evolution import BAD, HALF, TASK

GOOD = "def add(a, b):\n    return a + b"


class RecordingTrainer(GRPOTrainer):
    """The real trainer, keeping the `UpdateStats` each update returned."""

    def update(self, prompt, completions, rewards):
        stats = super().update(prompt, completions, rewards)
        self.returned = [*getattr(self, "returned", []), stats]
        return stats


def search(sandbox, programs, budget, **options):
    """PoT's search on TASK with a scripted policy and the real trainer."""
    policy = ScriptedPolicy(programs)
    trainer = RecordingTrainer(policy, GRPOConfig(lr=1e-2))
    config = SearchConfig(**options)
    return run_search(TASK, policy, sandbox, Ledger(budget), config, trainer=trainer), trainer


def test_update_records_are_what_the_trainer_computed(sandbox):
    tree, trainer = search(sandbox, [BAD, HALF, BAD], Budget(simulations=2))
    first, second = tree.updates
    # Rewards 0, 0.5, 0: mean 1/6, population std sqrt(1/18), so the advantages are
    # (R - 1/6) * sqrt(18) = -1/sqrt(2), sqrt(2), -1/sqrt(2).
    assert first["rewards"] == [0.0, 0.5, 0.0]
    h = 1 / math.sqrt(2)
    assert first["advantages"] == pytest.approx([-h, 2 * h, -h], abs=1e-6)
    assert (first["state"], first["group"], first["simulation"]) == (0, [1, 2, 3], 1)
    assert first["applied"] and not first["skipped"] and first["reason"] == ""
    assert (first["version_before"], first["version"], first["steps"]) == (0, 1, 3)
    assert first["programs_before"] == 3
    # The second group (HALF, BAD, BAD after the committed BAD) is the first one permuted.
    assert second["rewards"] == [0.5, 0.0, 0.0]
    assert second["advantages"] == pytest.approx([2 * h, -h, -h], abs=1e-6)
    assert (second["version_before"], second["version"]) == (1, 2)
    assert len(trainer.returned) == 2
    for record, stats in zip(tree.updates, trainer.returned, strict=True):
        computed = asdict(stats)
        assert {key: record[key] for key in computed} == computed
        assert math.isfinite(record["loss"]) and record["grad_norm"] > 0
    committed = [n for n in tree.nodes if n.creator == "committed"]
    assert [n.policy_version for n in committed] == [1, 2]  # sampled after each update


def test_every_group_is_recorded_with_why_it_was_not_trained_on(sandbox):
    tree, trainer = search(sandbox, [BAD], Budget(simulations=1))
    (update,) = tree.updates
    assert update["skipped"] and not update["applied"] and update["steps"] == 0
    assert update["reason"].startswith("equal rewards")
    assert (update["version_before"], update["version"]) == (0, 0)
    assert len(trainer.returned) == 1 and trainer.returned[0].skipped

    for programs, budget, options, why in [
        ([BAD, GOOD, BAD], Budget(programs=20), {}, "solved"),
        ([BAD, HALF, BAD], Budget(programs=3), {}, "budget spent"),
        ([BAD, HALF], Budget(simulations=2), {"k": 1}, "one program"),
    ]:
        tree, trainer = search(sandbox, programs, budget, **options)
        assert tree.updates and not hasattr(trainer, "returned"), why
        for update in tree.updates:
            assert update["reason"].startswith(why) and not update["applied"]
            assert update["version"] == update["version_before"] == 0


def test_solve_puts_the_updates_in_the_result_and_search_only_has_none(sandbox):
    budget = Budget(simulations=3)
    config = method_config("pot", {"grpo.lr": 1e-2})
    pot = solve(
        TASK, ScriptedPolicy([BAD, HALF, BAD]), sandbox, "pot", config=config, budget=budget
    )
    updates = pot.trace["updates"]
    assert [u["applied"] for u in updates] == [True, True, True]
    assert pot.costs.gradient_steps == sum(u["steps"] for u in updates) == 9
    assert [u["version"] for u in updates] == [1, 2, 3]
    only = solve(TASK, ScriptedPolicy([BAD, HALF, BAD]), sandbox, "search-only", budget=budget)
    assert only.trace["updates"] == []


def test_nodes_record_their_finish_reason_and_token_counts(sandbox):
    fenced = Completion("```python\nx = 1\n```", [1, 2], [-1.0, -1.0], 5, "stop")
    assert finish_reason(fenced) == "fence"
    assert finish_reason(Completion("x = 1", [1, 2], [], 5, "stop")) == "eos"
    assert finish_reason(Completion("```python\nx = 1", [1], [], 5, "length")) == "length"

    tree, trainer = search(sandbox, [BAD], Budget(simulations=1))
    prompt_tokens = len(trainer.policy.encode_prompt(path_prompt(TASK, [], trainer.policy, 6144)))
    for node in tree.nodes[1:]:
        assert (node.finish_reason, node.tokens, node.prompt_tokens) == ("fence", 10, prompt_tokens)
    assert (tree.root.finish_reason, tree.root.tokens) == ("", 0)

    real = LoraPolicy(Learner(*tiny_random_model(seed=0)))  # samples for real: noise, no fence
    config = SearchConfig(k=8, max_new_tokens=6, simulations=1, commit=False)
    tree = run_search(TASK, real, sandbox, Ledger(Budget()), config)
    for node in tree.nodes[1:]:
        assert node.finish_reason in ("eos", "length") and 1 <= node.tokens <= 6
        assert (node.finish_reason == "length") == (node.tokens == 6)
        assert node.prompt_tokens == prompt_tokens


def test_root_widening_samples_every_group_from_the_root_and_trains_that_state(sandbox):
    tree, trainer = search(sandbox, [BAD, HALF, BAD], Budget(simulations=4), root_widening=True)
    programs = tree.nodes[1:]
    assert len(programs) == 16 and all(n.parent == 0 and n.depth == 1 for n in programs)
    assert [u["state"] for u in tree.updates] == [0, 0, 0, 0]
    assert [u["version"] for u in tree.updates] == [1, 2, 3, 4]
    # Each update trained the prompt the next simulation samples from: the root's, every time.
    prompts = set(trainer.policy.prompts)
    assert len(prompts) == 1
    deep, _ = search(sandbox, [BAD, HALF, BAD], Budget(simulations=4))
    assert max(n.depth for n in deep.nodes) > 1  # the tree descends; the variant does not

    config = method_config("pot", {"search.root_widening": "true"})
    policy = ScriptedPolicy([BAD, HALF, BAD])
    result = solve(TASK, policy, sandbox, "pot", config=config, budget=Budget(simulations=2))
    assert result.config["search"]["root_widening"] is True
    assert {n["depth"] for n in result.trace["nodes"][1:]} == {1}


def test_pot_solve_prints_each_update_as_its_simulation_ends(sandbox, capsys):
    tree, _ = search(sandbox, [BAD, HALF, BAD], Budget(simulations=1))
    print_progress(tree)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("simulation   1")
    assert lines[1].startswith("  update 1 on node 0: rewards 0.00 0.50 0.00  ")
    assert "advantages -0.71 +1.41 -0.71  applied: policy v0 -> v1  (loss " in lines[1]

    tree, _ = search(sandbox, [BAD], Budget(simulations=1))
    print_progress(tree)
    line = capsys.readouterr().err.splitlines()[1]
    assert "skipped (equal rewards: every advantage is zero): policy stays v0" in line


QUIET = Task(
    id="t/quiet",
    prompt="Write a program that prints nothing.",
    kind="stdio",
    public_tests=[Test("stdio", input="", expected="")],
    hidden_tests=[Test("stdio", input="", expected="")],
)


def test_sampled_programs_change_after_an_update_inside_run_search(sandbox, one_thread):
    """A tiny random model writes one character: a digit, a space, '#' or nothing is a silent
    valid program (reward 1), most others fail (0), so its groups have mixed rewards. Two PoT
    searches sample with the same seeds, one at learning rate 0: before the first update they
    write the same programs, after it they differ, and only the update can have made them."""
    config = SearchConfig(
        k=16,
        temperature=1.0,
        max_new_tokens=1,
        simulations=2,
        early_stop=False,
        commit=False,
        root_widening=True,
    )
    runs = {}
    for lr in (0.0, 0.05):
        policy = LoraPolicy(Learner(*tiny_random_model(seed=0)))
        trainer = GRPOTrainer(policy, GRPOConfig(lr=lr))
        runs[lr] = run_search(QUIET, policy, sandbox, Ledger(Budget()), config, trainer=trainer)
    first, second = (
        {lr: [n.program for n in tree.nodes[1:] if n.simulation == s] for lr, tree in runs.items()}
        for s in (1, 2)
    )
    assert first[0.0] == first[0.05]
    rewards = [n.reward for n in runs[0.05].nodes[1:] if n.simulation == 1]
    assert 0.0 in rewards and 1.0 in rewards
    for tree in runs.values():
        assert tree.updates[0]["applied"] and tree.updates[0]["version"] == 1
        assert {n.policy_version for n in tree.nodes[1:] if n.simulation == 2} == {1}
    assert second[0.05] != second[0.0]
