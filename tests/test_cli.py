"""`pot solve`: one clear error line for bad input, and the real thing end to end."""

import json

import pytest
from typer.testing import CliRunner

from pot.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["solve", "--task-file", "no/such/file.jsonl", "--id", "x"], "task file no/such/file"),
        (["solve", "mbpp:validation/9999"], "9999"),
        (["solve", "mbpp:validation/523", "--method", "beam"], "unknown method 'beam'"),
        (["solve", "mbpp:validation/523", "--budget", "widgets=2"], "bad budget item"),
        (["solve", "mbpp:validation/523", "--budget", "programs=-3"], "bad budget programs=-3"),
        (["solve", "mbpp:validation/523", "--budget", "seconds=0"], "a limit must be positive"),
        (["solve", "mbpp:validation/523", "--budget", "programs=1.5"], "needs a whole number"),
        (["solve", "mbpp:validation/523", "--set", "search.width=2"], "unknown option"),
        (["solve", "--problem", "Add two numbers."], "--problem needs --tests"),
        (["solve"], "name a task"),
    ],
)
def test_bad_input_is_one_clear_error_line(args, message):
    result = run(*args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_tests_file_without_asserts_is_rejected(tmp_path):
    tests = tmp_path / "tests.py"
    tests.write_text("x = 1\n")
    result = run("solve", "--problem", "Add.", "--tests", str(tests))
    assert result.exit_code == 2 and "no top-level assert" in result.output


@pytest.mark.slow
def test_pot_solve_end_to_end_on_the_embedded_model(tmp_path):
    tests = tmp_path / "tests.py"
    tests.write_text("assert add(1, 2) == 3\n")
    hidden = tmp_path / "hidden.py"
    hidden.write_text("assert add(1, 2) == 3\nassert add(-4, 4) == 0\n")
    result = run(
        "solve",
        "--problem",
        "Write a python function add(a, b) that returns a + b.",
        "--tests",
        str(tests),
        "--hidden-tests",
        str(hidden),
        "--method",
        "pot",
        "--budget",
        "programs=6",
        "--set",
        "search.max_new_tokens=128",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert "simulation" in result.output and "trace written to" in result.output
    (trace_file,) = tmp_path.glob("*.pot.json")
    trace = json.loads(trace_file.read_text())
    assert trace["method"] == "pot" and trace["costs"]["programs"] <= 6
    assert len(trace["trace"]["nodes"]) - 1 == trace["costs"]["programs"]
    assert trace["costs"]["executions"] == trace["costs"]["programs"]
    assert trace["hidden_verdict"] in {
        "pass",
        "wrong_answer",
        "runtime_error",
        "syntax_error",
        "time_limit",
    }
