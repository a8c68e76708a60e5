"""Run config files (`--config run.toml`), task selection (--ids, --skip, --since/--until) and
the one-line errors for bad keys and budgets."""

import json

import pytest
from typer.testing import CliRunner

from pot.bench.config import ConfigError, read_config, render_config
from pot.budget import Budget
from pot.cli import app, bench_spec, load_settings
from pot.tasks import Task, TaskFormatError, Test, load_tasks
from pot.tasks.load import Selection
from tests.test_bench_cli import tiny_model_dir  # noqa: F401 (a fixture)

runner = CliRunner()


def one_error_line(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    out = [line for line in result.output.splitlines() if line.strip()]
    assert len(out) == 1 and out[0].startswith("error:") and message in out[0], result.output


def write(path, text: str):
    path.write_text(text)
    return path


def test_a_run_from_flags_and_one_from_its_saved_config_have_the_same_identity(
    tiny_model_dir,  # noqa: F811
    tmp_path,
):
    flags = [
        "bench", "--tasks", "mbpp:validation", "--ids", "511,512", "--methods", "zero-shot",
        "--budget", "programs=1", "--set", "max_new_tokens=4", "--set", "sandbox.timeout_s=6",
        "--model", str(tiny_model_dir), "--out", str(tmp_path / "flags"),
    ]  # fmt: skip
    result = runner.invoke(app, flags)
    assert result.exit_code == 0, result.output
    saved = tmp_path / "flags" / "config.toml"
    again = runner.invoke(app, ["bench", "--config", str(saved), "--out", str(tmp_path / "file")])
    assert again.exit_code == 0, again.output
    one, two = (json.loads((tmp_path / n / "run.json").read_text()) for n in ("flags", "file"))
    assert one["id"] == two["id"] and one["config"] == two["config"]
    assert one["identity"] == two["identity"]
    assert one["config"]["task_ids"] == ["mbpp/511", "mbpp/512"]
    assert one["identity"]["sandbox"]["limits"]["timeout_s"] == 6.0
    assert one["identity"]["engine"] == "transformers"  # "auto" resolved for this model
    assert (tmp_path / "file" / "config.toml").read_text() == saved.read_text()
    # the saved file alone reruns its own run: finished, so nothing to do
    before = (tmp_path / "flags" / "results.jsonl").read_bytes()
    rerun = runner.invoke(app, ["bench", "--config", str(saved)])
    assert rerun.exit_code == 0, rerun.output
    assert (tmp_path / "flags" / "results.jsonl").read_bytes() == before


def test_flags_and_set_override_the_file(tmp_path):
    config = write(
        tmp_path / "run.toml",
        'tasks = "humaneval"\nmethods = ["pot", "best-of-n"]\nseeds = [0, 1]\n'
        "budget = {programs = 6, seconds = 60}\nskip = 2\n"
        "[pot.search]\nk = 8\nmax_new_tokens = 64\n[sandbox]\ntimeout_s = 2.5\n"
        '[llamacpp]\nthreads = 2\nlogprobs_from = "transformers"\n',
    )
    settings = load_settings(config, "code", {"seeds": "3", "limit": None}, ["pot.search.k=5"])
    spec = bench_spec(settings, "code")
    assert spec.tasks == "humaneval" and spec.methods == ["pot", "best-of-n"]
    assert spec.seeds == [3] and spec.skip == 2 and spec.limit is None
    assert Budget.parse(spec.budget) == Budget(programs=6, seconds=60.0)
    assert spec.overrides == {
        "pot.search.k": "5",
        "pot.search.max_new_tokens": "64",
        "sandbox.timeout_s": "2.5",
        "llamacpp.threads": "2",
        "llamacpp.logprobs_from": "transformers",
    }
    assert spec.method_configs()["pot"].search.k == 5
    assert spec.engine_options() == {
        "llamacpp.threads": "2",
        "llamacpp.logprobs_from": "transformers",
    }
    assert spec.sandbox_settings().limits.timeout_s == 2.5
    rendered = write(tmp_path / "again.toml", render_config(spec.settings()))
    assert bench_spec(load_settings(rendered, "code", {}, []), "code") == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("search.kk = 3\n", "unknown key 'search.kk' (did you mean 'search.k'?)"),
        ("seed = 1\n", "unknown key 'seed' (did you mean 'seeds'?)"),
        ("[pot.serch]\nk = 8\n", "unknown key 'pot.serch.k' (did you mean 'pot.search.k'?)"),
        ("sandbox.timeout = 3\n", "(did you mean 'sandbox.timeout_s'?)"),
        ("[llamacpp]\nthread = 2\n", "(did you mean 'llamacpp.threads'?)"),
        ("limit = 'many'\n", "limit takes an integer, not 'many'"),
        ("tasks = [\n", "not valid TOML"),
        ('domain = "math"\n', "is a math run: use pot math --config"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, text, message):
    config = write(tmp_path / "run.toml", text)
    with pytest.raises(ConfigError) as error:
        read_config(config, "code")
    assert message in str(error.value) and "\n" not in str(error.value)
    result = runner.invoke(app, ["bench", "--config", str(config), "--out", str(tmp_path / "o")])
    one_error_line(result, message)


def test_solve_and_math_take_a_config_file(tmp_path):
    solve = write(
        tmp_path / "solve.toml", 'tasks = "mbpp:validation/523"\nbudget = "programs=-3"\n'
    )
    one_error_line(runner.invoke(app, ["solve", "--config", str(solve)]), "programs=-3")
    two = write(tmp_path / "two.toml", 'methods = "pot,best-of-n"\n')
    one_error_line(
        runner.invoke(app, ["solve", "mbpp:validation/523", "--config", str(two)]),
        "pot solve runs one method",
    )
    math = write(tmp_path / "math.toml", 'methods = "single"\nicpo.kk = 2\n')
    one_error_line(
        runner.invoke(app, ["math", "--config", str(math), "--out", str(tmp_path / "m")]),
        "unknown key 'icpo.kk' (did you mean 'icpo.k'?)",
    )


def lcb_tasks() -> list[Task]:
    dates = ["2023-05-01T00:00:00", "2024-08-01T00:00:00", "2024-12-31T12:00:00", "2025-02-01"]
    return [
        Task(
            id=f"lcb/q{i}",
            prompt="p",
            public_tests=[Test("stdio", input="", expected="")],
            hidden_tests=[Test("stdio", input="", expected="")],
            kind="stdio",
            metadata={"contest_date": date},
        )
        for i, date in enumerate(dates)
    ]


def test_contest_date_window_ids_skip_and_limit():
    tasks = lcb_tasks()

    def ids(**selection) -> list[str]:
        return [t.id for t in Selection(**selection).apply(tasks, "lcb:file")]

    assert ids(since="2024-08-01", until="2024-12-31") == ["lcb/q1", "lcb/q2"]  # both inclusive
    assert ids(since="2024-08-02") == ["lcb/q2", "lcb/q3"]
    assert ids(until="2024-07-31") == ["lcb/q0"]
    assert ids(ids=("q3", "lcb/q0")) == ["lcb/q3", "lcb/q0"]
    assert ids(skip=1, limit=2) == ["lcb/q1", "lcb/q2"]
    assert ids(since="2024-01-01", skip=1) == ["lcb/q2", "lcb/q3"]
    mbpp = load_tasks("mbpp:validation", selection=Selection(ids=("567", "511"), limit=1))
    assert [t.id for t in mbpp] == ["mbpp/567"]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"since": "2024-13-01"}, "--since '2024-13-01': give a day as YYYY-MM-DD"),
        ({"since": "2025-01-01", "until": "2024-01-01"}, "is after --until"),
        ({"skip": -1}, "--skip and --limit take a count >= 0"),
    ],
)
def test_bad_selections_are_errors(selection, message):
    with pytest.raises(TaskFormatError) as error:
        Selection(**selection)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2024-08-01"], "select by contest_date, and mbpp/"),
        (["--ids", "2,2"], "--ids '2,2': give distinct task ids"),
        (["--ids", "99999"], "unknown task id '99999'"),
        (["--budget", "programs=0"], "bad budget programs=0: a limit must be positive"),
        (["--budget", "tokens=-5"], "bad budget tokens=-5"),
        (["--budget", "programs=2,programs=3"], "programs is given twice"),
        (["--job-timeout", "0"], "--job-timeout 0: give a positive number of seconds"),
        (["--set", "sandbox.timeout_s=0"], "Limits.timeout_s must be positive"),
        (["--set", "sandbox.isolation=none"], "sandbox.isolation takes auto, bwrap, limited"),
    ],
)
def test_bad_selection_budget_and_limits_on_the_command_line(args, message, tmp_path):
    result = runner.invoke(app, ["bench", "--out", str(tmp_path / "run"), *args])
    one_error_line(result, message)
