import math

import pytest

from pot.budget import Budget, Ledger
from pot.methods import method_config, solve
from pot.methods.icpo import (
    ICPOConfig,
    Ideas,
    answer_entropy,
    generations,
    majority,
    min_entropy,
    run_math,
    user_text,
)
from pot.methods.math_methods import MathConfig, solve_math
from pot.policy import Completion, Learner, LoraPolicy
from pot.policy.tiny import tiny_random_model
from pot.tasks import Task, Test
from pot.tasks.math import MathTask, arithmetic_tasks


def test_majority_counts_valid_answers_and_breaks_ties_by_first_sampled():
    assert majority(["3", None, "5", "5", None, None]) == "5"
    assert majority(["7", "4", "4", "7"]) == "7"  # tie: 7 was sampled first
    assert majority(["4", "7", "7", "4"]) == "4"
    assert majority([None, None]) is None
    assert majority([]) is None


@pytest.mark.parametrize(
    ("answers", "bits"),
    [
        (["1", "1", "1", "1"], 0.0),
        (["1", "1", "2", "2"], 1.0),
        (["1", "2", "3", "4"], 2.0),
        (["1", "1", "1", "2"], -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))),
        (["1", "2", None, None], 1.0 + 2.0 * 0.5),  # H(1, 2) + log2(4) x half invalid
        (["1", None, None, None], 0.0 + 2.0 * 0.75),
        ([None, None, None, None], 5 * 2.0),  # nothing valid: 5 log2(n), as the official code
        (["a"] * 8 + [None] * 8, 4.0 * 0.5),
    ],
)
def test_answer_entropy_in_bits_with_invalid_penalty(answers, bits):
    assert answer_entropy(answers) == pytest.approx(bits)


def test_entropy_without_penalty_and_of_nothing():
    assert answer_entropy(["1", "2", None, None], invalid_penalty=False) == pytest.approx(1.0)
    assert answer_entropy([]) == math.inf


def test_min_entropy_selection_first_wins_ties():
    assert min_entropy([1.5, 0.5, 0.9]) == 1
    assert min_entropy([0.8, 0.3, 0.3, 0.3]) == 1
    assert min_entropy([2.0, 2.0]) == 0
    # the penalty decides: one clean answer beats two answers half of which are invalid
    candidates = [["4", "4", "5", "5"], ["4", "4", "4", None]]
    assert [round(answer_entropy(a), 3) for a in candidates] == [1.0, 0.5]
    assert min_entropy([answer_entropy(a) for a in candidates]) == 1


def test_ideas_keep_their_newest_entries_and_layout():
    ideas = Ideas()
    for n in range(7):
        ideas = ideas.with_idea(f"g{n}", good=True, keep=5).with_idea(f"b{n}", False, 5)
    assert ideas.good == ["g2", "g3", "g4", "g5", "g6"]
    assert ideas.bad == ["b2", "b3", "b4", "b5", "b6"]
    text = user_text("Q?", Ideas(bad=["x"], good=["y", "z"]))
    assert text == "Q?\n\nbad ideas (reward 0):\n[0]- x\n\ngood ideas (reward 1):\n[0]- y\n[1]- z"


def test_official_defaults_give_about_1450_generations():
    config = ICPOConfig()
    assert (config.rounds, config.k, config.entropy_k, config.final_k) == (5, 16, 16, 16)
    assert (config.temperature, config.top_p, config.repetition_penalty) == (0.6, 0.95, 1.1)
    assert config.summary_temperature == 0.05
    assert generations(config) == 1456


class ScriptedPolicy(LoraPolicy):
    """A real tiny policy whose texts are scripted by the kind of request.

    Summary requests get "idea-<n>" (n counts them); requests for `k` answers get the next
    scripted round; requests for `probe_k` answers (entropy probes) get `probe(prompt)`;
    others (the final answers) get `final`. Token ids and log-probs are the real ones.
    """

    def __init__(self, rounds, probe, final, k=3, probe_k=2, tokens=6):
        super().__init__(Learner(*tiny_random_model(seed=0, context_length=8192)))
        self.rounds, self.probe, self.final = list(rounds), probe, final
        self.k, self.probe_k, self.tokens = k, probe_k, tokens
        self.summaries, self.calls = 0, []

    def reset(self):
        super().reset()

    def sample(self, prompt, n, **kw):
        user = prompt[-1]["content"]
        self.calls.append((n, user, kw))
        if user.startswith("Provide a concise summary"):
            self.summaries += 1
            texts = [f"idea-{self.summaries}"]
        elif n == self.k:
            texts = self.rounds.pop(0)
        elif n == self.probe_k:
            texts = self.probe(user)
        else:
            texts = self.final[:n]
        prompt_ids = self.encode_prompt(prompt)
        ids = [
            self.learner.tokenizer(t, add_special_tokens=False).input_ids[: self.tokens]
            for t in texts
        ]
        logprobs = self.completion_logprobs(prompt_ids, ids) if texts else []
        return [
            Completion(text, row, lp.tolist(), len(prompt_ids), "stop")
            for text, row, lp in zip(texts, ids, logprobs, strict=True)
        ]


def boxed(*answers):
    return [f"so \\boxed{{{a}}}" for a in answers]


def math_script():
    # Round 1: label 5; summaries idea-1..3; the context with idea-2 (good) is unanimous.
    # Round 2: label 7; summaries idea-4..6; the context with idea-6 (bad) is unanimous.
    def probe(user):
        others = ("idea-1", "idea-3", "idea-4", "idea-5")
        if any(i in user for i in ("idea-2", "idea-6")) and not any(i in user for i in others):
            return boxed(9, 9)
        return boxed(1, 2)

    return ScriptedPolicy(
        rounds=[boxed(5, 5, 7), boxed(7, 7, 5)],
        probe=probe,
        final=boxed(7, 7, 5, "x") + ["no answer"],
    )


def small_config(**overrides):
    config = ICPOConfig(
        rounds=2, k=3, entropy_k=2, final_k=4, max_new_tokens=32, summary_max_new_tokens=16
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def test_prompt_after_two_rounds_holds_exactly_the_selected_summaries():
    policy = math_script()
    ledger = Ledger(Budget())
    task = MathTask("t", "What is 3 + 4?", "7")
    answers, trace = run_math(task, policy, ledger, small_config(), seed=0)

    first, second = trace["rounds"]
    assert first["answers"] == ["5", "5", "7"] and first["rewards"] == [1.0, 1.0, 0.0]
    assert [c["entropy"] for c in first["candidates"]] == [1.0, 0.0, 1.0]
    assert first["selected"] == 1
    assert second["answers"] == ["7", "7", "5"] and second["rewards"] == [1.0, 1.0, 0.0]
    assert [c["entropy"] for c in second["candidates"]] == [1.0, 1.0, 0.0]
    assert second["selected"] == 2

    good = "idea-2\nThus, the answer is \\boxed{5}"
    bad = "idea-6\nThus, the answer is \\boxed{5}"
    expected = user_text(task.question, Ideas(bad=[bad], good=[good]))
    assert trace["final_prompt"] == expected
    assert expected.count("idea-") == 2
    assert expected.index("bad ideas") < expected.index(bad) < expected.index("good ideas")
    assert expected.index("good ideas") < expected.index(good)
    assert second["prompt"] == user_text(task.question, Ideas(good=[good]))
    final_call = policy.calls[-1]
    assert final_call[1] == expected and final_call[0] == 4
    assert answers == ["7", "7", "5", "x", None][:4]

    # costs: per round 3 answers + 3 summaries + 3 probes of 2; then 4 final answers
    assert ledger.costs.programs == 2 * (3 + 3 + 3 * 2) + 4 == generations(small_config())
    tokens = sum(
        len(policy.learner.tokenizer(t, add_special_tokens=False).input_ids[:6])
        for t in boxed(5, 5, 7, 7, 7, 5) + ["idea-1"] * 6 + boxed(9) * 12 + boxed(7) * 4
    )
    assert ledger.costs.generated_tokens == tokens
    summary_calls = [kw for n, user, kw in policy.calls if user.startswith("Provide")]
    assert all(kw["temperature"] == 0.05 and not kw["stop_at_fence"] for kw in summary_calls)


def test_invalid_samples_are_not_summarized_and_one_candidate_needs_no_probe():
    policy = ScriptedPolicy(
        rounds=[["no answer", "still none", "\\boxed{4}"]],
        probe=lambda user: pytest.fail("no probe for a lone candidate"),
        final=boxed(4, 4, 4, 4),
    )
    ledger = Ledger(Budget())
    answers, trace = run_math(
        MathTask("t", "2+2?", "4"), policy, ledger, small_config(rounds=1), seed=0
    )
    (round_,) = trace["rounds"]
    assert round_["selected"] == 2 and len(round_["candidates"]) == 1
    assert trace["ideas"] == {"bad": [], "good": ["idea-1\nThus, the answer is \\boxed{4}"]}
    assert ledger.costs.programs == 3 + 1 + 4


def test_math_result_scores_maj_and_mean():
    policy = math_script()
    config = MathConfig(icpo=small_config())
    result = solve_math(MathTask("t", "What is 3 + 4?", "7"), policy, "me-icpo", config)
    assert result.answer == "7" and result.correct
    assert result.mean_correct == pytest.approx(2 / 4)
    assert result.costs.programs == 28


ADD = Task(
    id="add",
    prompt="Write add(a, b) that returns the sum.",
    entry_point="add",
    public_tests=[Test("assert", "assert add(1, 2) == 3")],
    hidden_tests=[Test("assert", "assert add(1, 2) == 3\nassert add(-4, 4) == 0")],
)


def code(body):
    return f"```python\ndef add(a, b):\n    return {body}\n```"


def test_code_variant_rewards_from_public_tests_and_answers_the_best_program(sandbox):
    probes = {
        "idea-1": [code("a - b"), code("a - b")],
        "idea-2": [code("a * b"), code("b - a")],
        "idea-3": [code("a - b"), "no program"],
    }

    def probe(user):
        return next(texts for idea, texts in probes.items() if idea in user)

    policy = ScriptedPolicy(
        rounds=[
            [code("a - b"), code("a * b"), "```python\ndef add(a, b) return\n```"],
            [code("a + b"), code("a - b"), code("a - b")],
        ],
        probe=probe,
        final=[code("a + b")] * 4,
    )
    config = method_config("me-icpo", {"rounds": 2, "k": 3, "entropy_k": 2, "final_k": 4})
    result = solve(ADD, policy, sandbox, "me-icpo", config=config)

    trace = result.trace
    first = trace["icpo"]["rounds"][0]
    assert first["rewards"] == [0.0, 0.0, 0.0]
    assert first["answers"][2] is None  # the syntax error never answered, but is still an idea
    assert [c["sample"] for c in first["candidates"]] == [0, 1, 2]
    assert first["candidates"][2]["summary"].endswith("reward of this program: 0.00 (syntax error)")
    # entropy in bits: idea-1's probes behave alike (0); idea-2's differ (1); idea-3's are one
    # answer and one invalid (0 + log2(2) x 1/2)
    assert [c["entropy"] for c in first["candidates"]] == [0.0, 1.0, 0.5]
    assert trace["icpo"]["ideas"]["bad"] == [
        "idea-1\nPublic-test reward of this program: 0.00 (wrong answer)"
    ]
    # round 2 writes a passing program: early stop before its summaries, no final answers
    assert result.answer.strip() == "def add(a, b):\n    return a + b"
    assert result.public_reward == 1.0 and result.hidden_passed
    programs = [n for n in trace["nodes"][1:]]
    assert len(programs) == 3 + 3 * 2 + 3 == result.costs.executions
    assert [n["simulation"] for n in programs] == [1] * 9 + [2] * 3
    assert result.costs.programs == 3 + 3 + 3 * 2 + 3  # answers, summaries, probes, answers
    assert result.first_solved_program == 10


@pytest.mark.slow
def test_end_to_end_on_the_embedded_model():
    from pot.api import load_policy

    policy = load_policy("default")
    config = MathConfig(
        icpo=ICPOConfig(
            rounds=1,
            k=2,
            entropy_k=2,
            final_k=2,
            max_new_tokens=32,
            summary_max_new_tokens=12,
            answer_format="last-number",
        )
    )
    (task,) = arithmetic_tasks(1, seed=1)
    result = solve_math(task, policy, "me-icpo", config)
    (round_,) = result.trace["rounds"]
    valid = [a for a in round_["answers"] if a is not None]
    assert len(round_["answers"]) == 2 and len(result.answers) == 2
    summaries = len(round_["candidates"])
    probes = 2 * summaries if summaries > 1 else 0
    assert result.costs.programs == 2 + summaries + probes + 2 <= generations(config.icpo)
    assert summaries <= len(valid)
    assert result.costs.generated_tokens > 0 and result.costs.prompt_tokens > 0
    assert result.costs.generate_s > 0 and result.costs.train_s == 0
    assert all(
        c["summary"].endswith(f"\\boxed{{{round_['answers'][c['sample']]}}}")
        for c in round_["candidates"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "single,beam"], "unknown math method 'beam'"),
        (["--tasks", "arith:lots"], "use arith:<n>[:<seed>]"),
        (["--set", "icpo.width=2"], "unknown option 'icpo.width' for pot math"),
        (["--set", "icpo.k=many"], "option 'icpo.k' takes an integer"),
    ],
)
def test_pot_math_bad_input_is_one_clear_error_line(tmp_path, args, message):
    from typer.testing import CliRunner

    from pot.cli import app

    result = CliRunner().invoke(app, ["math", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0]
