import json
import re
from functools import partial

import pytest
from typer.testing import CliRunner

from pot.bench import BenchSpec, SerialExecutor, run_bench
from pot.bench.report import write_report
from pot.cli import app
from pot.policy.tiny import tiny_random_model
from pot.tasks import TaskFormatError
from pot.tasks.math import (
    answers_equal,
    arithmetic_tasks,
    extract_answer,
    last_boxed,
    load_math_tasks,
    normalize_answer,
)
from tests.scripted import ScriptedPolicy


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so \\boxed{\\frac{1}{\\sqrt{2}}} is it", "\\frac{1}{\\sqrt{2}}"),  # nested braces
        ("first \\boxed{3}, finally \\boxed{\\dfrac{2}{3}}.", "\\dfrac{2}{3}"),  # the last one
        (
            "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        ),
        ("Thus, the answer is boxed{42}", "42"),  # the official code's summaries drop the \\
        ("Natalia sold 48+24 = 72 clips.\n#### 72", "72"),  # GSM8K
        ("#### 1,234\n", "1,234"),
        ("unclosed \\boxed{12", None),
        ("The answer is 18.", None),  # strict: no box, no answer
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_last_number_fallback_only_when_asked():
    assert extract_answer("so the total is -3.5 apples.", "last-number") == "-3.5"
    assert extract_answer("it is \\boxed{7}, not 8", "last-number") == "7"
    assert extract_answer("no numbers", "last-number") is None
    assert extract_answer("so 32, and then 1,234,567 apples, 12,", "last-number") == "12"
    assert extract_answer("we get 1,234,567.", "last-number") == "1,234,567"
    assert last_boxed("none here") is None


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [
        ("\\dfrac{1}{2}", "0.5"),
        ("\\frac{2}{4}", "1/2"),
        ("\\tfrac12", "\\frac{1}{2}"),
        ("1,000", "1000"),
        ("1{,}000", "1000"),
        ("5\\text{ cm}", "5"),
        ("-3", "-3.0"),
        ("\\$18", "18"),
        ("50\\%", "50"),
        ("x+1", "1+x"),  # math-verify: symbolic
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("\\left(1, 2\\right)", "(1,2)"),
    ],
)
def test_equivalent_answers(predicted, reference):
    assert answers_equal(predicted, reference)


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [("7", "8"), ("-3", "3"), ("1/3", "0.33"), (None, "1"), ("x+1", "x-1"), ("1,000", "1")],
)
def test_different_answers(predicted, reference):
    assert not answers_equal(predicted, reference)


def test_normalized_keys_group_equal_numbers():
    assert {normalize_answer(a) for a in ["12", "12.0", "12.", "$12$", "\\frac{24}{2}"]} == {"12"}
    assert normalize_answer("\\dfrac{3}{4}") == normalize_answer("0.75") == "0.75"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_loads_gsm8k_math_and_aime_layouts(tmp_path):
    gsm8k = write_jsonl(
        tmp_path / "gsm8k.jsonl",
        [
            {"question": "Q1?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"},
        ],
    )
    math = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {
                "unique_id": "m/1",
                "problem": "P?",
                "solution": "so $\\boxed{\\frac{1}{2}}$",
                "level": 3,
            },
            {"unique_id": "m/2", "problem": "P2?", "solution": "long", "answer": "7"},
        ],
    )
    aime = write_jsonl(
        tmp_path / "aime.jsonl",
        [
            {"ID": "2024-I-1", "Problem": "A?", "Answer": 204},
        ],
    )
    (q,) = load_math_tasks(gsm8k)
    assert (q.question, q.answer) == ("Q1?", "4")
    first, second = load_math_tasks(math)
    assert (first.id, first.answer, first.metadata) == ("m/1", "\\frac{1}{2}", {"level": 3})
    assert second.answer == "7"
    (a,) = load_math_tasks(aime)
    assert (a.id, a.question, a.answer) == ("2024-I-1", "A?", "204")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "Q?", "answer": "4"}, "line 1: field 'answer' has no '#### <answer>'"),
        ({"problem": "P?", "solution": "no box"}, "has no \\boxed{...} answer"),
        ({"id": "x", "text": "?"}, "(x): unknown math layout (fields: id, text)"),
        ({"id": "y", "problem": 3, "answer": "1"}, "(y): field 'problem' must be a string"),
    ],
)
def test_malformed_records_name_file_record_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(TaskFormatError) as error:
        load_math_tasks(path)
    assert str(error.value).startswith(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_specs():
    with pytest.raises(TaskFormatError, match="arith:<n>"):
        load_math_tasks("arith:many")
    with pytest.raises(TaskFormatError, match="unknown math task spec"):
        load_math_tasks("nonsense")


def test_arithmetic_problems_are_seeded_and_correct():
    tasks = load_math_tasks("arith:12:3")
    assert [t.question for t in tasks] == [t.question for t in arithmetic_tasks(12, 3)]
    assert [t.question for t in tasks] != [t.question for t in arithmetic_tasks(12, 4)]
    assert len({t.id for t in tasks}) == 12
    assert load_math_tasks("arith:12:3", limit=2) == tasks[:2]
    for task in tasks:  # recompute each answer from the numbers in the question
        numbers = [int(n) for n in re.findall(r"\d+", task.question)]
        kind = task.metadata["kind"]
        expected = {
            "buy_and_give": lambda n: n[0] + n[1] - n[2],
            "groups": lambda n: n[0] * n[1] + n[2],
            "shared": lambda n: (n[0] - n[2]) // n[1],
            "price": lambda n: n[2] - n[0] * n[1],
        }[kind](numbers)
        assert int(task.answer) == expected > 0


# --- `pot math` through the bench runner -----------------------------------------------------

MATH_SPEC = BenchSpec(
    domain="math",
    tasks="arith:4:1",
    methods=["single", "majority", "ttrl"],
    budget="",
    overrides={
        "icpo.rounds": "1",
        "icpo.k": "2",
        "icpo.entropy_k": "1",
        "icpo.final_k": "2",
        "icpo.max_new_tokens": "16",
    },
)
MATH_SET = [f"--set={key}={value}" for key, value in MATH_SPEC.overrides.items()]


def math_tasks():
    return load_math_tasks(MATH_SPEC.tasks)


def math_executor() -> SerialExecutor:
    answers = ["so \\boxed{7}", "so \\boxed{9}", "so \\boxed{7}", "no answer"]
    return SerialExecutor(partial(ScriptedPolicy, answers, tokens=6))


def test_math_runs_through_the_bench_runner(tmp_path):
    records = run_bench(tmp_path, MATH_SPEC, math_tasks(), math_executor())
    assert len(records) == 12 and len(lines(tmp_path / "results.jsonl")) == 12
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["domain"] == "math" and run["identity"]["sandbox"] is None
    assert run["config"]["method_configs"]["ttrl"]["icpo"]["k"] == 2
    single = next(r for r in records if r["method"] == "single")
    assert single["answers"] == ["7"] and single["worker"] == "local"
    majority = next(r for r in records if r["method"] == "majority")
    assert majority["costs"]["programs"] == 8  # ME-ICPO's nominal count: 1 x (2x2 + 2x1) + 2
    ttrl = next(r for r in records if r["method"] == "ttrl")
    assert len(ttrl["trace"]["updates"]) == 3 and ttrl["costs"]["gradient_steps"] > 0
    text = write_report(tmp_path).read_text()
    assert "## Accuracy and mean costs per question" in text and "| single | 4 |" in text


def test_pot_math_resumes_survives_a_cut_line_and_refuses_other_settings(tmp_path):
    model, tokenizer = tiny_random_model(seed=0, context_length=4096)  # ME-ICPO's long prompt
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    out = tmp_path / "run"
    command = [
        "math", "--tasks", "arith:2", "--methods", "single,majority", *MATH_SET,
        "--model", str(tmp_path / "model"), "--out", str(out),
    ]  # fmt: skip
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    results = out / "results.jsonl"
    assert len(lines(results)) == 4 and (out / "config.toml").exists()
    assert not any("error" in r for r in lines(results))
    data = results.read_bytes()
    results.write_bytes(data[:-40])  # a kill cut the last line
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert len(lines(results)) == 4
    assert len({(r["task_id"], r["method"], r["seed"]) for r in lines(results)}) == 4
    changed = CliRunner().invoke(app, [*command, "--set", "icpo.k=3"])
    assert changed.exit_code == 2 and "different config" in changed.output
    assert len(changed.output.strip().splitlines()) == 1
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
