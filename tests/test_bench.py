"""`pot bench`'s runner: one record per (task, method, seed), resumable after a kill, never mixing
two configs. The policy is scripted (tests/scripted.py); the programs run in the real sandbox."""

import json
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from pot.bench import BenchError, BenchSpec, RunFolder, SerialExecutor, run_bench, split_overrides
from pot.tasks import Task, Test
from tests.scripted import ScriptedPolicy

ROOT = Path(__file__).resolve().parents[1]
GOOD = "def add(a, b):\n    return a + b"
WRONG = "def add(a, b):\n    return a - b"
HALF = "def add(a, b):\n    return a + b if a > 1 else 0"
SPEC = BenchSpec(
    tasks="tests", methods=["zero-shot", "best-of-n", "pot"], budget="programs=4", seeds=[0, 1]
)
SMALL = BenchSpec(tasks="tests", methods=["zero-shot", "pot"], budget="programs=4", seeds=[0, 1, 2])


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
        task("one", ["assert add(1, 2) == 3", "assert add(2, 2) == 4"], ["assert add(0, 5) == 5"]),
        task("two", ["assert add(2, 2) == 4", "assert add(0, 1) == 1"], ["assert add(3, 4) == 7"]),
    ]


def scripted() -> SerialExecutor:
    return SerialExecutor(partial(ScriptedPolicy, [WRONG, HALF, WRONG, GOOD]))


def comparable(record: dict) -> dict:
    """A record without what differs between two runs of the same job: timings, the worker."""
    record = json.loads(json.dumps(record))
    del record["worker"], record["session"]
    record["costs"] = {k: v for k, v in record["costs"].items() if not k.endswith("_s")}
    for node in record["trace"].get("nodes", []):  # code results: a search tree
        del node["created_s"]
    for update in record["trace"].get("updates", []):  # PoT's GRPO updates
        update.pop("seconds", None), update.pop("at_s", None)
    record.get("posthoc", {}).pop("seconds", None)  # code results: programs judged afterwards
    return record


@pytest.fixture(scope="module")
def math_run(tmp_path_factory) -> dict[tuple, dict]:
    from tests.test_math_tasks import MATH_SPEC, math_executor, math_tasks

    out = tmp_path_factory.mktemp("math")
    return by_key(run_bench(out, MATH_SPEC, math_tasks(), math_executor()))


def by_key(records: list[dict]) -> dict[tuple, dict]:
    keyed = {(r["task_id"], r["method"], r["seed"]): comparable(r) for r in records}
    assert len(keyed) == len(records), "duplicate records"
    return keyed


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    run_bench(out, SPEC, bench_tasks(), scripted())
    return out


@pytest.fixture(scope="module")
def uninterrupted(whole_run) -> dict[tuple, dict]:
    return by_key(RunFolder(whole_run).records())


def copy_of(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_one_record_per_key_in_paired_order_and_the_run_recorded(whole_run):
    records = RunFolder(whole_run).records()
    order = [(r["task_id"], r["seed"], r["method"]) for r in records]
    assert order == [(t, s, m) for t in ["t/one", "t/two"] for s in [0, 1] for m in SPEC.methods]
    on_disk = [json.loads(line) for line in (whole_run / "results.jsonl").read_text().splitlines()]
    assert on_disk == records
    run = json.loads((whole_run / "run.json").read_text())
    assert run["config"]["task_ids"] == ["t/one", "t/two"]
    assert run["config"]["budget"]["programs"] == 4
    assert run["config"]["method_configs"]["pot"]["search"]["k"] == 3
    assert {r["run_id"] for r in records} == {run["id"]}
    (session,) = run["sessions"]
    assert session["versions"]["torch"] and session["versions"]["transformers"]
    assert session["workers"][0]["isolation"] in {"bwrap", "limited"}
    assert session["git"] is None or len(session["git"]["commit"]) == 40
    # zero-shot writes WRONG; best-of-n's first batch of 4 ends with GOOD; PoT learns from its
    # first group of 3 and commits GOOD.
    zero_shot, best_of_n, pot = records[:3]
    assert not zero_shot["hidden_passed"] and best_of_n["hidden_passed"] and pot["hidden_passed"]
    assert pot["costs"]["gradient_steps"] > 0 and pot["first_solved_program"] == 4


def test_a_finished_run_is_not_started_again(whole_run, tmp_path):
    run = copy_of(whole_run, tmp_path)
    before = (run / "results.jsonl").read_bytes()

    def must_not_load() -> None:
        raise AssertionError("the policy was loaded for a finished run")

    records = run_bench(run, SPEC, bench_tasks(), SerialExecutor(must_not_load))
    assert len(records) == 12
    assert (run / "results.jsonl").read_bytes() == before


class Killed(Exception):
    pass


def die_after(count: int) -> Callable[[dict], None]:
    finished = []

    def on_result(record: dict) -> None:
        finished.append(record)
        if len(finished) == count:
            raise Killed

    return on_result


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, uninterrupted):
    with pytest.raises(Killed):
        run_bench(tmp_path, SPEC, bench_tasks(), scripted(), on_result=die_after(5))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 5
    finished = []
    resumed = run_bench(tmp_path, SPEC, bench_tasks(), scripted(), on_result=finished.append)
    assert len(finished) == 7
    assert by_key(resumed) == uninterrupted
    run = json.loads((tmp_path / "run.json").read_text())
    assert len(run["sessions"]) == 2


def test_a_line_cut_by_a_kill_is_dropped_and_its_job_run_again(whole_run, tmp_path, uninterrupted):
    run = copy_of(whole_run, tmp_path)
    results = run / "results.jsonl"
    data = results.read_bytes()
    results.write_bytes(data[: len(data) - 200])  # the last record loses its end and newline
    assert len(RunFolder(run).records()) == 11
    resumed = run_bench(run, SPEC, bench_tasks(), scripted())
    assert by_key(resumed) == uninterrupted
    assert by_key([json.loads(line) for line in results.read_text().splitlines()]) == uninterrupted


# Imports pot once, then for each line "FOLDER DOMAIN COUNT" on stdin forks a run of that
# domain's bench that SIGKILLs itself after COUNT records, and prints how the run ended (its
# exit code; -9 when killed). A forked run imports nothing again: each kill point costs one
# interpreter start (its bench worker's forkserver), not two.
KILL_SERVER = """
import os, signal, sys
from pathlib import Path
from pot.bench import run_bench
from tests.test_bench import kill_case

def run_until_killed(folder, domain, count):
    os.dup2(2, 1)  # stdout carries the exit codes
    spec, tasks, executor = kill_case(domain)
    finished = []
    def kill_self(record):
        finished.append(record)
        if len(finished) == count:
            os.kill(os.getpid(), signal.SIGKILL)
    run_bench(Path(folder), spec, tasks, executor, on_result=kill_self)

while line := sys.stdin.readline():
    folder, domain, count = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            run_until_killed(folder, domain, int(count))
        finally:
            os._exit(1)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""
KILL_POINTS = sorted(random.Random(14).sample(range(1, 12), 2))  # after that many records


class KillServer:
    def __init__(self, log: Path) -> None:
        self.log = log
        command = [sys.executable, "-c", KILL_SERVER]
        with log.open("w") as errors:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=errors, text=True,
            )  # fmt: skip

    def run(self, folder: Path, domain: str, count: int) -> int:
        """The exit code of a run in `folder` that was to kill itself after `count` records."""
        self.process.stdin.write(f"{folder} {domain} {count}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"the kill server died: {self.errors()}"
        return int(answer)

    def errors(self) -> str:
        return self.log.read_text()[-3000:]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def kill_server(tmp_path_factory):
    server = KillServer(tmp_path_factory.mktemp("kills") / "stderr.txt")
    yield server
    server.close()


def kill_case(domain: str) -> tuple:
    """The run that a killed process makes: code (SPEC) or math (`pot math`'s runner)."""
    if domain == "math":
        from tests.test_math_tasks import MATH_SPEC, math_executor, math_tasks

        return MATH_SPEC, math_tasks(), math_executor()
    return SPEC, bench_tasks(), scripted()


@pytest.mark.parametrize("domain", ["code", "math"])
def test_sigkill_at_two_random_points_then_resume(tmp_path, domain, request, kill_server):
    spec, tasks, executor = kill_case(domain)
    expected = request.getfixturevalue("uninterrupted" if domain == "code" else "math_run")
    written = 0
    for point in KILL_POINTS:
        code = kill_server.run(tmp_path, domain, point - written)
        assert code == -signal.SIGKILL, kill_server.errors()
        written = point
        assert len(RunFolder(tmp_path).records()) == point
    resumed = run_bench(tmp_path, spec, tasks, executor)
    assert by_key(resumed) == expected
    on_disk = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert by_key(on_disk) == expected  # every key once: nothing lost, nothing duplicated
    sessions = json.loads((tmp_path / "run.json").read_text())["sessions"]
    assert [s["number"] for s in sessions] == [1, 2, 3]


def test_a_different_config_in_the_same_folder_is_an_error(tmp_path):
    one_task = bench_tasks()[:1]
    with pytest.raises(Killed):
        run_bench(tmp_path, SMALL, one_task, scripted(), on_result=die_after(1))
    changed = BenchSpec(**{**SMALL.__dict__, "budget": "programs=5"})
    with pytest.raises(BenchError, match=r"different config \(budget.programs: 4 before, 5 now\)"):
        run_bench(tmp_path, changed, one_task, scripted())
    with pytest.raises(BenchError, match="task_ids differ"):
        run_bench(tmp_path, SMALL, bench_tasks(), scripted())
    overridden = BenchSpec(**{**SMALL.__dict__, "overrides": {"pot.search.k": "2"}})
    with pytest.raises(BenchError, match=r"method_configs.pot.search.k: 3 before, 2 now"):
        run_bench(tmp_path, overridden, one_task, scripted())


def no_such_model() -> None:
    raise ValueError("model not found")


def test_a_run_that_wrote_no_result_yet_can_start_over_with_another_config(tmp_path):
    with pytest.raises(ValueError, match="model not found"):
        run_bench(tmp_path, SMALL, bench_tasks(), SerialExecutor(no_such_model))
    changed = BenchSpec(**{**SMALL.__dict__, "seeds": [0]})
    assert len(run_bench(tmp_path, changed, bench_tasks(), scripted())) == 4
    assert json.loads((tmp_path / "run.json").read_text())["config"]["seeds"] == [0]
    (tmp_path / "run.json").unlink()
    with pytest.raises(BenchError, match="run.json is missing"):
        run_bench(tmp_path, changed, bench_tasks(), scripted())


def test_a_bad_line_inside_the_results_is_an_error_not_a_silent_skip(tmp_path):
    with pytest.raises(Killed):
        run_bench(tmp_path, SMALL, bench_tasks()[:1], scripted(), on_result=die_after(3))
    results = tmp_path / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:2] + ["{not json\n"] + lines[2:]))
    with pytest.raises(BenchError, match=r"results.jsonl:3: not a JSON record"):
        run_bench(tmp_path, SMALL, bench_tasks()[:1], scripted())


def test_two_runners_cannot_write_one_folder(tmp_path):
    def start_a_second_runner(record: dict) -> None:
        run_bench(tmp_path, SMALL, bench_tasks(), scripted())

    with pytest.raises(BenchError, match="another run is writing"):
        run_bench(tmp_path, SMALL, bench_tasks(), scripted(), on_result=start_a_second_runner)


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
        ({"search.k": "many"}, "--set for search-only: option 'search.k' takes an integer"),
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

    run_bench(tmp_path, SMALL, bench_tasks()[:1], scripted(), on_result=count_lines)
    assert seen_on_disk == list(range(1, 7))
