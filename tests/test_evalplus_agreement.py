"""Our MBPP+ verdicts agree with EvalPlus's own evaluator (evalplus 0.3.1, `evalplus.evaluate`)
on base and plus, for every canonical solution of the shipped tasks and for mutants of them
(tests/mutants.py).

EvalPlus runs live every time, from a fresh cache, on a fixed seeded few of the tasks (all
their programs); on the others ours are compared with EvalPlus's verdicts recorded by
tests/data/make_evalplus_verdicts.py, whose header says how and on what they were made. The
live run also checks the recording: on its tasks EvalPlus must still say what the file says.
(A full EvalPlus run takes minutes: it first computes the expected outputs of all 160 tasks.)
EvalPlus's minimum per-input time limit is set to our per-test limit (4 s).

Known disagreements, each named where it is excluded:
- Mbpp/630: one plus input's expected output is a 3^10-element list (1.3 MB encoded), over the
  sandbox's output limit, so our loader leaves the task out (EvalPlus grades it).
- Mbpp/599: the reference sums range(10**8) on three plus inputs, 2-6 s each on this machine;
  our per-test limit is 4 s, EvalPlus's is 4x the reference's own time, so a correct program
  passes there and may time out here depending on load. Its verdicts are not compared.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pytest

from pot.methods.common import group_scores
from pot.tasks.mbppplus import SHIPPED_FILE
from tests.evalplus_runner import AGREEMENT_OPTIONS, evaluate, verdicts, write_samples
from tests.mutants import SLOW_REFERENCES, agreement_samples, dataset_digest, digest

pytest.importorskip("evalplus")

RECORDED = Path(__file__).resolve().parent / "data" / "evalplus_mbppplus_verdicts.json"
RERUN = "rerun `python -m tests.data.make_evalplus_verdicts`"
NOT_COMPARED = {
    "Mbpp/630": "left out by our loader (see the module docstring)",
    "Mbpp/599": "time-limit dependent (see the module docstring)",
}
# The live run's tasks, drawn with LIVE_SEED: some among those with a mutant that passes base
# but not plus (the rarest outcome), the others among the rest.
LIVE_SEED = 0
LIVE_RARE, LIVE_OTHER = 2, 4
BASE_ONLY = (True, False)


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    return agreement_samples()


@pytest.fixture(scope="module")
def recorded(samples) -> list[tuple[bool, bool]]:
    """EvalPlus's recorded (base, plus) per sample; a recording made for other programs, data
    or evalplus version fails every test that uses it, saying how to make it again."""
    recording = json.loads(RECORDED.read_text())
    made = recording["provenance"]
    if made["samples_sha256"] != digest(samples):
        pytest.fail(f"{RECORDED.name} was recorded for other programs; {RERUN}")
    if made["dataset_sha256"] != dataset_digest():
        pytest.fail(f"{RECORDED.name} was recorded on another {SHIPPED_FILE.name}; {RERUN}")
    if made["evalplus_version"] != metadata.version("evalplus"):
        pytest.fail(f"{RECORDED.name} was recorded with evalplus {made['evalplus_version']}")
    rows = recording["verdicts"]
    assert [row[:2] for row in rows] == [[s["task_id"], s["kind"]] for s in samples]
    return [(base, plus) for _, _, base, plus in rows]


@pytest.fixture(scope="module")
def ours(sandbox, samples, shipped_mbppplus) -> list[tuple[bool, bool] | None]:
    """Our (base, plus) per sample; None where not compared."""
    tasks = {task.metadata["evalplus_task_id"]: task for task in shipped_mbppplus}

    def judge(sample: dict) -> tuple[bool, bool] | None:
        task = tasks.get(sample["task_id"])
        if task is None or sample["task_id"] in NOT_COMPARED:
            return None
        scores = group_scores(task, sandbox.evaluate_task(task, sample["solution"], "hidden"))
        return scores["base"], scores["plus"]

    with ThreadPoolExecutor(sandbox.workers) as threads:
        return list(threads.map(judge, samples))


def live_task_ids(samples: list[dict], recorded: list[tuple[bool, bool]]) -> list[str]:
    mutated = {s["task_id"] for s in samples if s["kind"] == "mutant"}
    candidates = sorted(mutated - SLOW_REFERENCES - set(NOT_COMPARED))
    rare = {
        sample["task_id"]
        for sample, theirs in zip(samples, recorded, strict=True)
        if sample["kind"] == "mutant" and theirs == BASE_ONLY
    }
    rng = random.Random(LIVE_SEED)
    chosen = rng.sample([t for t in candidates if t in rare], LIVE_RARE)
    return chosen + rng.sample([t for t in candidates if t not in rare], LIVE_OTHER)


@pytest.fixture(scope="module")
def live(samples, recorded, tmp_path_factory) -> dict[int, tuple[bool, bool]]:
    """EvalPlus's (base, plus) now, by sample index, on the live tasks' programs."""
    chosen = set(live_task_ids(samples, recorded))
    folder = tmp_path_factory.mktemp("evalplus")
    lines = SHIPPED_FILE.read_text().splitlines(keepends=True)
    dataset = folder / "MbppPlus_live.jsonl"
    dataset.write_text("".join(line for line in lines if json.loads(line)["task_id"] in chosen))
    indices = [i for i, sample in enumerate(samples) if sample["task_id"] in chosen]
    programs = write_samples(folder / "samples.jsonl", [samples[i] for i in indices])
    results = evaluate(programs, dataset, *AGREEMENT_OPTIONS)
    return dict(zip(indices, verdicts([samples[i] for i in indices], results), strict=True))


def compared(samples: list[dict], ours: list, theirs: list, kind: str) -> list[tuple]:
    """(task id, ours, theirs, program) for each compared sample of `kind`."""
    return [
        (sample["task_id"], mine, other, sample["solution"])
        for sample, mine, other in zip(samples, ours, theirs, strict=True)
        if sample["kind"] == kind and mine is not None
    ]


def disagreements(rows: list[tuple]) -> list[tuple]:
    return [row for row in rows if row[1] != row[2]]


def test_evalplus_run_now_agrees_with_ours_and_with_its_recorded_verdicts(
    samples, recorded, ours, live
):
    assert len({samples[i]["task_id"] for i in live}) == LIVE_RARE + LIVE_OTHER
    now = [(i, samples[i]["task_id"], theirs) for i, theirs in live.items()]
    assert [(task_id, ours[i]) for i, task_id, _ in now] == [(t, v) for _, t, v in now]
    assert [(task_id, recorded[i]) for i, task_id, _ in now] == [(t, v) for _, t, v in now]
    assert {samples[i]["kind"] for i in live} == {"canonical", "mutant"}
    assert set(live.values()) == {(False, False), BASE_ONLY, (True, True)}


def test_every_canonical_solution_gets_evalplus_verdicts(samples, recorded, ours):
    canonical = compared(samples, ours, recorded, "canonical")
    assert len(canonical) == 158  # 160 shipped, less Mbpp/630 (left out) and /599 (timing)
    assert disagreements(canonical) == []
    assert all(theirs == (True, True) for _, _, theirs, _ in canonical)


def test_mutants_get_evalplus_verdicts(samples, recorded, ours):
    mutated = compared(samples, ours, recorded, "mutant")
    assert len(mutated) >= 300
    assert disagreements(mutated) == []
    # the mutants exercise every outcome: fail base, pass base only, pass both
    assert {theirs for _, _, theirs, _ in mutated} == {(False, False), BASE_ONLY, (True, True)}
