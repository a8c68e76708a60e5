"""`pot bench --ray`: two local Ray actors give the same per-problem results as the serial
runner, append to the same results.jsonl and resume the same way.

Same means every program, reward, verdict, visit count and cost count equal, and float
statistics (log-probs, priors) equal to 1e-6. A Ray actor runs torch on one thread
(OMP_NUM_THREADS=1), so the serial reference does too: with more threads sums are taken in
another order, and after a few GRPO updates log-probs then differ by about 1e-4."""

import json
from functools import partial
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from pot.bench import BenchSpec, RayExecutor, RunFolder, SerialExecutor, run_bench
from pot.cli import app
from tests.scripted import FaultyPolicy, ScriptedPolicy, one_thread
from tests.test_bench import (
    GOOD,
    HALF,
    SPEC,
    WRONG,
    Killed,
    bench_tasks,
    by_key,
    die_after,
)
from tests.test_bench_cli import BENCH, tiny_model_dir  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    # The actors unpickle tests.scripted.ScriptedPolicy: they need the repository on their path.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield
    ray.shutdown()


def same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-6, abs=1e-9)
    return a == b and type(a) is type(b)


PROGRAMS = [WRONG, HALF, WRONG, GOOD]


def on_ray() -> RayExecutor:
    return RayExecutor(partial(ScriptedPolicy, PROGRAMS), workers=2)


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict:
    executor = SerialExecutor(partial(one_thread, partial(ScriptedPolicy, PROGRAMS)))
    return by_key(run_bench(tmp_path_factory.mktemp("serial"), SPEC, bench_tasks(), executor))


def test_two_actors_give_the_serial_results_and_resume_after_an_interruption(
    local_ray, serial, tmp_path
):
    with pytest.raises(Killed):
        run_bench(tmp_path, SPEC, bench_tasks(), on_ray(), on_result=die_after(4))
    assert len(RunFolder(tmp_path).records()) == 4
    resumed = run_bench(tmp_path, SPEC, bench_tasks(), on_ray())
    assert same(by_key(resumed), serial)
    assert {r["worker"] for r in resumed} == {"ray-0", "ray-1"}
    on_disk = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(on_disk) == 12 and same(by_key(on_disk), serial)
    sessions = json.loads((tmp_path / "run.json").read_text())["sessions"]
    for session in sessions:
        assert [w["worker"] for w in session["workers"]] == ["ray-0", "ray-1"]
        assert all(w["isolation"] in {"bwrap", "limited"} for w in session["workers"])
    assert [s["number"] for s in sessions] == [1, 2]


def test_pot_bench_ray_cli_with_a_model_directory(local_ray, tiny_model_dir, tmp_path):  # noqa: F811
    command = [*BENCH, "--model", str(tiny_model_dir), "--out", str(tmp_path), "--ray"]
    result = CliRunner().invoke(app, [*command, "--workers", "2"])
    assert result.exit_code == 0, result.output
    records = RunFolder(tmp_path).records()
    assert len(records) == 12 and {r["worker"] for r in records} == {"ray-0", "ray-1"}
    (session,) = json.loads((tmp_path / "run.json").read_text())["sessions"]
    assert [w["device"] for w in session["workers"]] == ["cpu", "cpu"]


def test_a_killed_actor_is_replaced_and_its_job_retried_once(local_ray, tmp_path):
    marker = tmp_path / "died-once"
    faults = {"(one)": f"die-once:{marker}", "(two)": "die"}  # in zero-shot's decoding
    spec = BenchSpec(tasks="tests", methods=["zero-shot", "best-of-n"], budget="programs=4")
    policy = partial(FaultyPolicy, PROGRAMS, faults)
    records = run_bench(tmp_path / "run", spec, bench_tasks(), RayExecutor(policy, workers=2))
    keyed = {(r["task_id"], r["method"]): r for r in records}
    assert len(records) == 4 and marker.exists()
    retried = keyed[("t/one", "zero-shot")]
    assert "error" not in retried and retried["answer"].strip() == WRONG  # its second attempt
    died = keyed[("t/two", "zero-shot")]["error"]
    assert died["type"] == "WorkerDied" and "on each of 2 attempts" in died["message"]
    assert all("error" not in keyed[(t, "best-of-n")] for t in ("t/one", "t/two"))
    assert keyed[("t/two", "best-of-n")]["answer"].strip() == GOOD
    on_disk = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    assert len(on_disk) == 4
    again = run_bench(tmp_path / "run", spec, bench_tasks(), RayExecutor(policy, workers=2))
    assert (
        len(again) == 4 and len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 4
    )
