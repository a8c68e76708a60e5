"""Sandbox throughput: runs per second of one trivial program + one assert test, three ways.

(a) a new python3 process per run, no isolation;
(b) a new bubblewrap sandbox per run (same flags and seccomp filter as the workers);
(c) `pot.sandbox.Sandbox`: warm bwrap workers, one fork per run.

All three use every core (one concurrent run per core). Usage:
    python benchmarks/sandbox_throughput.py [--runs 300] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pot.sandbox import Sandbox
from pot.sandbox.host_worker import (
    DEFAULT_PYTHON,
    ENVIRONMENT,
    PYTHON_FLAGS,
    bwrap_command,
    sandbox_user,
    seccomp_memfd,
)
from pot.tasks import Test

PROGRAM = "def add(a, b):\n    return a + b\n"
TEST = "assert add(2, 3) == 5"


def new_python() -> None:
    command = [DEFAULT_PYTHON, *PYTHON_FLAGS, "-c", f"{PROGRAM}\n{TEST}\n"]
    subprocess.run(command, check=True, env=ENVIRONMENT, capture_output=True)


def new_bwrap() -> None:
    user = sandbox_user()
    ids = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
    fd = seccomp_memfd()
    try:
        command = bwrap_command("bwrap", DEFAULT_PYTHON, fd, f"{PROGRAM}\n{TEST}\n")
        subprocess.run(command, check=True, env={}, capture_output=True, pass_fds=(fd,), **ids)
    finally:
        os.close(fd)


def runs_per_second(run: Callable[[], None], runs: int, workers: int) -> float:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: run(), range(workers)))  # warm-up
        start = time.perf_counter()
        list(pool.map(lambda _: run(), range(runs)))
        return runs / (time.perf_counter() - start)


def warm_workers(runs: int, workers: int) -> float:
    with Sandbox(workers=workers, isolation="bwrap") as sandbox:
        jobs = [(PROGRAM, [Test("assert", source=TEST)], None, "")] * runs
        sandbox.evaluate_many(jobs[:workers])  # warm-up
        start = time.perf_counter()
        evaluations = sandbox.evaluate_many(jobs)
        seconds = time.perf_counter() - start
    assert all(e.all_passed for e in evaluations)
    return runs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    rates = {
        "(a) new python3 per run, no isolation": runs_per_second(
            new_python, args.runs, args.workers
        ),
        "(b) new bwrap per run": runs_per_second(new_bwrap, args.runs, args.workers),
        "(c) warm bwrap workers (pot.sandbox)": warm_workers(args.runs, args.workers),
    }
    print(
        f"{args.runs} runs each, {args.workers} concurrent, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'method':40} {'runs/s':>8} {'ms/run/core':>12} {'vs (a)':>7}")
    baseline = rates["(a) new python3 per run, no isolation"]
    for name, rate in rates.items():
        print(f"{name:40} {rate:8.1f} {1000 * args.workers / rate:12.2f} {rate / baseline:6.1f}x")


if __name__ == "__main__":
    main()
