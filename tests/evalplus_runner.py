"""EvalPlus's own evaluator (`python -m evalplus.evaluate`, evalplus 0.3.1) on a samples file,
in a subprocess: on the given MbppPlus file (MBPP_OVERRIDE_PATH, nothing downloaded), with a
cache folder beside the samples (nothing shared with another run), and with PYTHONHASHSEED=0
as our sandbox workers have, so both sides see the same set and dict orders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Its minimum per-input time limit set to our per-test limit (4 s).
AGREEMENT_OPTIONS = ("--min_time_limit", "4", "--parallel", str(os.cpu_count() or 1))


def evaluate(samples: Path, dataset: Path, *options: str) -> dict[str, list[dict]]:
    """EvalPlus's results per task id, each task's in the samples' order."""
    environment = os.environ | {
        "MBPP_OVERRIDE_PATH": str(dataset),
        "PYTHONHASHSEED": "0",
        "XDG_CACHE_HOME": str(samples.parent / "evalplus-cache"),
    }
    command = [sys.executable, "-m", "evalplus.evaluate", "--dataset", "mbpp"]
    command += ["--samples", str(samples), *options]
    run = subprocess.run(command, env=environment, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"evalplus.evaluate failed: {run.stderr[-3000:]}")
    results = samples.with_name(samples.name.removesuffix(".jsonl") + "_eval_results.json")
    return json.loads(results.read_text())["eval"]


def verdicts(samples: list[dict], results: dict[str, list[dict]]) -> list[tuple[bool, bool]]:
    """(base, plus) per sample, in the samples' order; plus counts only with base, as
    EvalPlus's own plus score does."""
    seen: dict[str, int] = {}
    found = []
    for sample in samples:
        index = seen.get(sample["task_id"], 0)
        seen[sample["task_id"]] = index + 1
        result = results[sample["task_id"]][index]
        base = result["base_status"] == "pass"
        found.append((base, base and result["plus_status"] == "pass"))
    return found


def write_samples(path: Path, samples: list[dict]) -> Path:
    lines = (json.dumps({"task_id": s["task_id"], "solution": s["solution"]}) for s in samples)
    path.write_text("".join(line + "\n" for line in lines))
    return path
