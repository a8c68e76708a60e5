"""Writes evalplus_mbppplus_verdicts.json: EvalPlus's own verdicts (base, plus) on every program
of tests/mutants.py `agreement_samples` (each shipped MBPP+ canonical solution and its seeded
mutants), for tests/test_evalplus_agreement.py to compare ours with. A full run takes minutes
(EvalPlus first computes the expected outputs of all 160 tasks, then runs about 570 programs),
so the test runs EvalPlus live on a few tasks and takes the rest from this file.

Rerun it when the shipped MbppPlus file, the mutants or the evalplus version change (the test
says so): from the repository root, python -m tests.data.make_evalplus_verdicts [output path]
"""

import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from pot.tasks.mbppplus import SHIPPED_FILE
from tests.evalplus_runner import AGREEMENT_OPTIONS, evaluate, verdicts, write_samples
from tests.mutants import agreement_samples, dataset_digest, digest

OUTPUT = Path(__file__).resolve().parent / "evalplus_mbppplus_verdicts.json"


def provenance(samples: list[dict], seconds: float) -> dict:
    version = metadata.version("evalplus")
    command = " ".join(["python -m evalplus.evaluate --dataset mbpp", *AGREEMENT_OPTIONS])
    return {
        "made_by": "python -m tests.data.make_evalplus_verdicts",
        "evaluator": f"evalplus {version}: {command}, PYTHONHASHSEED=0, a fresh cache",
        "evalplus_version": version,
        "dataset": "src/pot/data/mbppplus/MbppPlus_dev.jsonl (MBPP_OVERRIDE_PATH)",
        "dataset_sha256": dataset_digest(),
        "samples": f"tests/mutants.py agreement_samples(): {len(samples)} programs",
        "samples_sha256": digest(samples),
        "recorded_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "seconds": round(seconds),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main(output: Path) -> None:
    samples = agreement_samples()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        path = write_samples(Path(folder) / "samples.jsonl", samples)
        found = verdicts(samples, evaluate(path, SHIPPED_FILE, *AGREEMENT_OPTIONS))
    rows = [
        json.dumps([sample["task_id"], sample["kind"], base, plus])
        for sample, (base, plus) in zip(samples, found, strict=True)
    ]
    header = json.dumps(provenance(samples, time.monotonic() - start), indent=1)
    columns = json.dumps(["task_id", "kind", "base", "plus"])
    body = ",\n  ".join(rows)
    output.write_text(
        f'{{\n"provenance": {header},\n"columns": {columns},\n"verdicts": [\n  {body}\n]\n}}\n'
    )
    print(f"wrote EvalPlus's verdicts on {len(samples)} programs to {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
