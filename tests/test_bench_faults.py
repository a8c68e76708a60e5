"""A failing job is recorded, not fatal: a job that raises and one that hangs past the per-job
limit become error records, the other jobs' results are intact, a second run reruns nothing,
and `retry_errors` reruns exactly the errored jobs. Resume refuses another setup."""

import json
from functools import partial

import pytest

from pot.bench import BenchError, BenchSpec, RunFolder, SerialExecutor, run_bench
from pot.bench.report import write_report
from pot.tasks import Task, Test
from tests.scripted import FaultyPolicy
from tests.test_bench import GOOD, HALF, SMALL, WRONG, Killed, bench_tasks, die_after, scripted

PROGRAMS = [WRONG, HALF, WRONG, GOOD]
FAULTS = {"(two)": "raise", "(three)": "hang"}  # in zero-shot's greedy decoding only
SPEC = BenchSpec(
    tasks="tests", methods=["zero-shot", "best-of-n"], budget="programs=4", job_timeout=15
)


def three_tasks() -> list[Task]:
    three = Task(
        id="t/three",
        prompt="Write add(a, b) (three).",
        entry_point="add",
        public_tests=[Test("assert", "assert add(1, 1) == 2")],
        hidden_tests=[Test("assert", "assert add(2, 5) == 7")],
    )
    return [*bench_tasks(), three]


def never_loaded() -> None:
    raise AssertionError("the policy was loaded for a run with nothing to do")


def lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faulty")
    executor = SerialExecutor(partial(FaultyPolicy, PROGRAMS, FAULTS))
    return out, run_bench(out, SPEC, three_tasks(), executor)


def test_a_job_that_raises_and_one_that_hangs_are_recorded_and_the_run_completes(faulty_run):
    out, records = faulty_run
    assert len(records) == len(lines(out)) == 6
    keyed = {(r["task_id"], r["method"]): r for r in records}
    raised, hung = keyed[("t/two", "zero-shot")]["error"], keyed[("t/three", "zero-shot")]["error"]
    assert raised["type"] == "RuntimeError"
    assert raised["message"] == "prompt too long: 9000 tokens, the context holds 8192"
    traceback = (out / raised["traceback"]).read_text()
    assert traceback.startswith("Traceback") and "in misbehave" in traceback
    assert hung["type"] == "JobTimeout" and "per-job limit of 15 s" in hung["message"]
    assert hung["traceback"] is None
    # every other job ran as in a run without faults: zero-shot writes WRONG, best-of-n GOOD
    for (task, method), record in keyed.items():
        if (task, method) in {("t/two", "zero-shot"), ("t/three", "zero-shot")}:
            continue
        assert "error" not in record
        assert record["answer"].strip() == (WRONG if method == "zero-shot" else GOOD)
        assert record["hidden_passed"] == (method == "best-of-n")


def test_the_report_counts_errored_jobs_apart_from_failures(faulty_run, tmp_path):
    out, _ = faulty_run
    text = write_report(out).read_text()
    assert "- results: 4 of 6, and 2 errored jobs" in text
    assert "errored jobs per method: zero-shot 2." in text
    assert "| zero-shot | 1 | 0 | 0.000 |" in text  # one zero-shot result, not three failures
    assert "| best-of-n | 3 | 3 | 1.000 |" in text


def test_a_second_run_reruns_nothing_and_retry_errors_reruns_exactly_the_errored(
    faulty_run, tmp_path
):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(faulty_run[0], out)
    before = (out / "results.jsonl").read_bytes()
    again = run_bench(out, SPEC, three_tasks(), SerialExecutor(never_loaded))
    assert (out / "results.jsonl").read_bytes() == before and len(again) == 6

    rerun = []
    fixed = SerialExecutor(partial(FaultyPolicy, PROGRAMS, {}))
    records = run_bench(out, SPEC, three_tasks(), fixed, retry_errors=True, on_result=rerun.append)
    assert sorted((r["task_id"], r["method"]) for r in rerun) == [
        ("t/three", "zero-shot"),
        ("t/two", "zero-shot"),
    ]
    assert len(lines(out)) == 8 and len(records) == 6
    assert all("error" not in r and r["answer"].strip() == WRONG for r in rerun)
    assert {r["session"] for r in rerun} == {2}
    assert len(RunFolder(out).records()) == 6 and not any("error" in r for r in records)
    nothing = run_bench(out, SPEC, three_tasks(), SerialExecutor(never_loaded), retry_errors=True)
    assert len(nothing) == 6 and len(lines(out)) == 8


def started(tmp_path, spec: BenchSpec = SMALL):
    with pytest.raises(Killed):
        run_bench(tmp_path, spec, bench_tasks()[:1], scripted(), on_result=die_after(1))


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"engine": "transformers"}, 'engine: "auto" before, "transformers" now'),
        (
            {"overrides": {"sandbox.timeout_s": "8"}},
            "sandbox.limits.timeout_s: 4.0 before, 8.0 now",
        ),
        ({"overrides": {"sandbox.isolation": "limited"}}, 'sandbox.isolation: "auto" before'),
    ],
)
def test_a_resume_with_another_engine_or_sandbox_is_refused_in_one_line(
    tmp_path, change, difference
):
    started(tmp_path)
    changed = BenchSpec(**{**SMALL.__dict__, **change})
    with pytest.raises(BenchError) as refused:
        run_bench(tmp_path, changed, bench_tasks()[:1], SerialExecutor(never_loaded))
    message = str(refused.value)
    assert "another setup" in message and difference in message and "--allow-mixed" in message
    assert "\n" not in message


def test_allow_mixed_resumes_and_the_report_flags_it(tmp_path):
    started(tmp_path)
    changed = BenchSpec(**{**SMALL.__dict__, "engine": "transformers"})
    records = run_bench(tmp_path, changed, bench_tasks()[:1], scripted(), allow_mixed=True)
    assert len(records) == 6
    run = json.loads((tmp_path / "run.json").read_text())
    first, second = run["sessions"]
    assert "mixed" not in first and second["mixed"] == ['engine: "auto" before, "transformers" now']
    assert first["identity"]["engine"] == "auto" and run["identity"]["engine"] == "auto"
    text = write_report(tmp_path).read_text()
    assert '**MIXED RUN** (resumed with --allow-mixed): session 2: engine: "auto" before' in text
    assert "session 1 (" in text and "added 1 records" in text and "added 5 records" in text


def test_run_json_records_the_identity(tmp_path):
    started(tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    identity = run["identity"]
    assert identity["engine"] == "auto"
    assert identity["sandbox"]["isolation"] == "auto"
    assert identity["sandbox"]["limits"]["timeout_s"] == 4.0
    assert set(identity["versions"]) == {
        "torch",
        "transformers",
        "peft",
        "llama-cpp-python",
        "vllm",
    }
    assert identity["versions"]["torch"]
    model = identity["model"]
    assert model["name"] == "default"
    assert model["gguf_sha256"] is None or len(model["gguf_sha256"]) == 64
    (session,) = run["sessions"]
    assert session["identity"] == identity
    assert session["git"] is None or len(session["git"]["commit"]) == 40
