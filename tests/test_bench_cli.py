"""`pot bench` end to end on a real (tiny, random) model saved to a directory: run, resume,
refuse a changed config, then `pot report` and `pot view` on the run."""

import json

import pytest
from typer.testing import CliRunner

from pot.cli import app
from pot.policy.tiny import tiny_random_model

runner = CliRunner()
BENCH = [
    "bench", "--tasks", "mbpp:validation", "--limit", "2", "--methods", "zero-shot,best-of-n,pot",
    "--budget", "programs=4", "--seeds", "0,1", "--set", "max_new_tokens=8",
    "--set", "pot.search.max_new_tokens=8",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-model")
    model, tokenizer = tiny_random_model(seed=0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def lines(path) -> list[str]:
    return path.read_text().splitlines()


def test_bench_runs_resumes_and_refuses_a_changed_config(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    command = [*BENCH, "--model", str(tiny_model_dir), "--out", str(out)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "12 jobs" in result.output and f"pot report {out}" in result.output
    records = [json.loads(line) for line in lines(out / "results.jsonl")]
    assert len({(r["task_id"], r["method"], r["seed"]) for r in records}) == 12
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["method_configs"]["best-of-n"]["max_new_tokens"] == 8
    assert config["method_configs"]["pot"]["search"]["max_new_tokens"] == 8
    assert config["model"] == str(tiny_model_dir) and config["seeds"] == [0, 1]

    again = runner.invoke(app, command)
    assert again.exit_code == 0 and len(lines(out / "results.jsonl")) == 12

    changed = runner.invoke(app, [*command, "--oracle"])
    assert changed.exit_code == 2
    assert changed.output.startswith("error:") and len(changed.output.strip().splitlines()) == 1
    assert "different config (oracle: false before, true now)" in changed.output

    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert "| pot | 4 |" in (out / "report.md").read_text()
    assert runner.invoke(app, ["view", str(out)]).exit_code == 0
    assert len(list((out / "view").glob("*.html"))) == 13


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "pot,beam"], "unknown method 'beam'"),
        (["--set", "search.width=2"], "--set search.width: no method of this run"),
        (["--methods", "pot", "--set", "zero-shot.max_new_tokens=8"], "not one of this run's"),
        (["--seeds", "0,x"], "--seeds '0,x'"),
        (["--seeds", "1,1"], "distinct integers"),
        (["--budget", "widgets=2"], "bad budget item"),
        (["--workers", "2"], "add --ray"),
        (["--tasks", "mbpp:validation/9999"], "9999"),
        (["--model", "no/such/model-dir"], "no/such/model-dir"),
    ],
)
def test_bad_bench_input_is_one_clear_error_line(args, message, tmp_path):
    result = runner.invoke(app, ["bench", "--out", str(tmp_path / "run"), "--limit", "1", *args])
    assert result.exit_code == 2, result.output
    out = [line for line in result.output.splitlines() if line.strip()]
    assert len(out) == 1 and out[0].startswith("error:") and message in out[0], result.output
    assert "Traceback" not in result.output
