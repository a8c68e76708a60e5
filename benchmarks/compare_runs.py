"""Methods of several `pot bench` run folders side by side, on the tasks every row shares.

    python benchmarks/compare_runs.py runs/tune-train-defaults runs/tune-train-root-widening

One row per (run folder, method): problems, hidden pass@1 of the answer, problems where some
program passed the hidden tests (post-hoc), the best public reward (mean over problems),
problems solved on the public tests, GRPO updates applied, and mean seconds per problem. Made
for variants of one method that need their own folders (a `--set` applies to a whole run),
e.g. issue 15's tuning runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pot.bench.report import (
    Record,
    load_run,
    mean,
    some_passes_at_budget,
    summarize_updates,
    updates_of,
)


def rows_of(folder: Path) -> dict[str, list[Record]]:
    run, records, _ = load_run(folder)
    return {m: [r for r in records if r["method"] == m] for m in run["config"]["methods"]}


def row(name: str, records: list[Record]) -> str:
    some = [some_passes_at_budget(r, r["costs"]["programs"]) for r in records]
    best = [max((n["reward"] for n in r["trace"]["nodes"][1:]), default=0.0) for r in records]
    applied = summarize_updates(records, records[0]["method"]).applied if records else 0
    cells = [
        name,
        str(len(records)),
        str(sum(r["hidden_passed"] for r in records)),
        str(sum(some)),
        f"{mean(best):.3f}",
        str(sum(b >= 1.0 for b in best)),
        str(applied) if any(updates_of(r) for r in records) else "-",
        f"{mean([r['costs']['programs'] for r in records]):.1f}",
        f"{mean([r['costs']['wall_s'] for r in records]):.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by `pot bench`")
    args = parser.parse_args()
    table = {
        f"{folder.name}: {method}": records
        for folder in args.runs
        for method, records in rows_of(folder).items()
        if records
    }
    shared = set.intersection(*({(r["task_id"], r["seed"]) for r in v} for v in table.values()))
    print(f"{len(shared)} problems (task, seed) shared by every row\n")
    print(
        "| run: method | problems | answer passes hidden | some program passes hidden | "
        "best public reward | public solved | updates applied | programs | wall s |"
    )
    print("|---" * 9 + "|")
    for name, records in table.items():
        print(row(name, [r for r in records if (r["task_id"], r["seed"]) in shared]))


if __name__ == "__main__":
    main()
