"""`pot bench`'s runner: one record per (task, method, seed), resumable after a kill, never mixing
two configs. The policy is scripted (tests/scripted.py); the programs run in the real sandbox."""

import json
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from pot.bench import BenchError, BenchSpec, RunFolder, SerialExecutor, run_bench, split_overrides
from pot.tasks import Task, Test
from tests.scripted import ScriptedPolicy

ROOT = Path(__file__).resolve().parents[1]
GOOD = "def add(a, b):\n    return a + b"
WRONG = "def add(a, b):\n    return a - b"
HALF = "def add(a, b):\n    return a + b if a else 0"
SPEC = BenchSpec(
    tasks="tests", methods=["zero-shot", "best-of-n", "pot"], budget="programs=4", seeds=[0, 1]
)


def bench_tasks() -> list[Task]:
    def task(name: str, public: list[str], hidden: list[str]) -> Task:
        return Task(
            id=f"t/{name}",
            prompt=f"Write add(a, b) ({name}).",
            entry_point="add",
            public_tests=[Test("assert", s) for s in public],
            hidden_tests=[Test("assert", s) for s in hidden],
        )

    return [
        task("one", ["assert add(1, 2) == 3"], ["assert add(1, 2) == 3", "assert add(0, 5) == 5"]),
        task("two", ["assert add(2, 2) == 4", "assert add(0, 1) == 1"], ["assert add(3, 4) == 7"]),
    ]


def scripted() -> SerialExecutor:
    return SerialExecutor(partial(ScriptedPolicy, [WRONG, HALF, GOOD]))


def comparable(record: dict) -> dict:
    """A record without what differs between two runs of the same job: timings, the worker."""
    record = json.loads(json.dumps(record))
    del record["worker"]
    record["costs"] = {k: v for k, v in record["costs"].items() if not k.endswith("_s")}
    for node in record["trace"]["nodes"]:
        del node["created_s"]
    return record


def by_key(records: list[dict]) -> dict[tuple, dict]:
    keyed = {(r["task_id"], r["method"], r["seed"]): comparable(r) for r in records}
    assert len(keyed) == len(records), "duplicate records"
    return keyed


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[tuple, dict]:
    out = tmp_path_factory.mktemp("whole")
    return by_key(run_bench(out, SPEC, bench_tasks(), scripted()))


def test_one_record_per_key_in_paired_order_and_the_run_recorded(tmp_path, uninterrupted):
    records = run_bench(tmp_path, SPEC, bench_tasks(), scripted())
    order = [(r["task_id"], r["seed"], r["method"]) for r in records]
    assert order == [(t, s, m) for t in ["t/one", "t/two"] for s in [0, 1] for m in SPEC.methods]
    assert by_key(records) == uninterrupted
    on_disk = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert on_disk == records
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["task_ids"] == ["t/one", "t/two"]
    assert run["config"]["budget"]["programs"] == 4
    assert run["config"]["method_configs"]["pot"]["search"]["k"] == 3
    assert {r["run_id"] for r in records} == {run["id"]}
    (session,) = run["sessions"]
    assert session["versions"]["torch"] and session["versions"]["transformers"]
    assert session["workers"][0]["isolation"] in {"bwrap", "limited"}
    assert session["git"] is None or len(session["git"]["commit"]) == 40
    # zero-shot writes WRONG; best-of-n's first batch of 4 holds GOOD.
    assert not records[0]["hidden_passed"] and records[1]["hidden_passed"]


def test_a_finished_run_is_not_started_again(tmp_path):
    run_bench(tmp_path, SPEC, bench_tasks(), scripted())
    before = (tmp_path / "results.jsonl").read_bytes()

    def must_not_load() -> None:
        raise AssertionError("the policy was loaded for a finished run")

    records = run_bench(tmp_path, SPEC, bench_tasks(), SerialExecutor(must_not_load))
    assert len(records) == 12
    assert (tmp_path / "results.jsonl").read_bytes() == before


class Killed(Exception):
    pass


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, uninterrupted):
    finished = []

    def die_after_five(record: dict) -> None:
        finished.append(record)
        if len(finished) == 5:
            raise Killed

    with pytest.raises(Killed):
        run_bench(tmp_path, SPEC, bench_tasks(), scripted(), on_result=die_after_five)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 5
    resumed = run_bench(tmp_path, SPEC, bench_tasks(), scripted(), on_result=finished.append)
    assert len(finished) == 5 + 7
    assert by_key(resumed) == uninterrupted
    run = json.loads((tmp_path / "run.json").read_text())
    assert len(run["sessions"]) == 2


def test_a_line_cut_by_a_kill_is_dropped_and_its_job_run_again(tmp_path, uninterrupted):
    run_bench(tmp_path, SPEC, bench_tasks(), scripted())
    results = tmp_path / "results.jsonl"
    data = results.read_bytes()
    results.write_bytes(data[: len(data) - 200])  # the last record loses its end and newline
    assert len(RunFolder(tmp_path).records()) == 11
    resumed = run_bench(tmp_path, SPEC, bench_tasks(), scripted())
    assert by_key(resumed) == uninterrupted
    assert by_key([json.loads(line) for line in results.read_text().splitlines()]) == uninterrupted


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from pot.bench import run_bench
from tests.test_bench import SPEC, bench_tasks, scripted
count = []
def kill_self(record):
    count.append(record)
    if len(count) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
run_bench(Path(sys.argv[1]), SPEC, bench_tasks(), scripted(), on_result=kill_self)
"""


def test_sigkill_mid_run_then_resume(tmp_path, uninterrupted):
    command = [sys.executable, "-c", KILLED_RUN, str(tmp_path)]
    killed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(RunFolder(tmp_path).records()) == 3
    resumed = run_bench(tmp_path, SPEC, bench_tasks(), scripted())
    assert by_key(resumed) == uninterrupted


def test_a_different_config_in_the_same_folder_is_an_error(tmp_path):
    run_bench(tmp_path, SPEC, bench_tasks()[:1], scripted(), on_result=lambda r: None)
    changed = BenchSpec(**{**SPEC.__dict__, "budget": "programs=5"})
    with pytest.raises(BenchError, match=r"different config \(budget.programs: 4 before, 5 now\)"):
        run_bench(tmp_path, changed, bench_tasks()[:1], scripted())
    with pytest.raises(BenchError, match="task_ids differ"):
        run_bench(tmp_path, SPEC, bench_tasks(), scripted())
    overridden = BenchSpec(**{**SPEC.__dict__, "overrides": {"pot.search.k": "2"}})
    with pytest.raises(BenchError, match=r"method_configs.pot.search.k: 3 before, 2 now"):
        run_bench(tmp_path, overridden, bench_tasks()[:1], scripted())


def test_a_bad_line_inside_the_results_is_an_error_not_a_silent_skip(tmp_path):
    run_bench(tmp_path, SPEC, bench_tasks()[:1], scripted())
    results = tmp_path / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:2] + ["{not json\n"] + lines[2:]))
    with pytest.raises(BenchError, match=r"results.jsonl:3: not a JSON record"):
        run_bench(tmp_path, SPEC, bench_tasks()[:1], scripted())


def test_two_runners_cannot_write_one_folder(tmp_path):
    def start_a_second_runner(record: dict) -> None:
        run_bench(tmp_path, SPEC, bench_tasks(), scripted())

    with pytest.raises(BenchError, match="another `pot bench` is writing"):
        run_bench(tmp_path, SPEC, bench_tasks(), scripted(), on_result=start_a_second_runner)


def test_overrides_scoped_by_method_or_applied_to_every_method_that_has_them():
    methods = ["best-of-n", "search-only", "pot"]
    split = split_overrides(methods, {"max_new_tokens": "64", "search.max_new_tokens": "128"})
    assert split == {
        "best-of-n": {"max_new_tokens": "64"},
        "search-only": {"search.max_new_tokens": "128"},
        "pot": {"search.max_new_tokens": "128"},
    }
    split = split_overrides(methods, {"pot.search.k": "8", "search.k": "5", "grpo.lr": "0.01"})
    assert split["pot"] == {"search.k": "8", "grpo.lr": "0.01"}
    assert split["search-only"] == {"search.k": "5"} and split["best-of-n"] == {}
    spec = BenchSpec(methods=methods, overrides={"pot.search.k": "8", "search.k": "5"})
    configs = spec.method_configs()
    assert configs["pot"].search.k == 8 and configs["search-only"].search.k == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"search.width": "2"}, "no method of this run"),
        ({"n": "4", "zero-shot.n": "1"}, "zero-shot has no option 'n'"),
        ({"self-repair.rounds": "3"}, "self-repair is not one of this run's methods"),
        ({"search.k": "many"}, "--set for search-only: invalid literal"),
    ],
)
def test_bad_overrides_are_clear_errors(overrides, message):
    spec = BenchSpec(methods=["zero-shot", "best-of-n", "search-only"], overrides=overrides)
    with pytest.raises(BenchError, match=message):
        spec.method_configs()


def test_unknown_method_is_a_clear_error():
    with pytest.raises(BenchError, match="unknown method 'beam'"):
        BenchSpec(methods=["pot", "beam"]).method_configs()


def test_records_are_flushed_as_each_job_finishes(tmp_path):
    seen_on_disk = []

    def count_lines(record: dict) -> None:
        seen_on_disk.append(len((tmp_path / "results.jsonl").read_text().splitlines()))

    run_bench(tmp_path, SPEC, bench_tasks()[:1], scripted(), on_result=count_lines)
    assert seen_on_disk == list(range(1, 7))
