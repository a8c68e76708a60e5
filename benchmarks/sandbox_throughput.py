"""Sandbox throughput and the cost of a looping program's hidden verdict, in one run.

Runs per second of one trivial program + one assert test, three ways:
(a) a new python3 process per run, no isolation, program and test in one process;
(b) a new bubblewrap sandbox per run (same flags and seccomp filter as the workers);
(c) `pot.sandbox.Sandbox`: warm bwrap workers with the two-process judge (a fork of the program
    server runs the program, a fork of the judge runs the test and calls it through a pipe).
All three use every core (one concurrent run per core).

Then seconds to judge a program that loops forever on N hidden tests, on one worker: running
every test (each costs the time limit) and stopping at the first failure (as hidden runs do).

Usage:
    python benchmarks/sandbox_throughput.py [--runs 300] [--workers N]
        [--hidden-tests 100] [--timeout 4.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pot.sandbox import Limits, Sandbox
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
LOOPING = "def add(a, b):\n    while True:\n        pass\n"


def new_python() -> None:
    command = [DEFAULT_PYTHON, *PYTHON_FLAGS, "-c", f"{PROGRAM}\n{TEST}\n"]
    subprocess.run(command, check=True, env=ENVIRONMENT, capture_output=True)


def new_bwrap() -> None:
    user = sandbox_user()
    ids = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
    fd = seccomp_memfd()
    try:
        python = [DEFAULT_PYTHON, *PYTHON_FLAGS, "-c", f"{PROGRAM}\n{TEST}\n"]
        command = bwrap_command("bwrap", DEFAULT_PYTHON, fd, python)
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


def looping_verdict_seconds(tests: int, timeout_s: float) -> dict[str, float]:
    """Seconds to judge LOOPING on `tests` hidden tests, every test vs stopping at the first
    failing one, on one warm worker."""
    hidden = [Test("assert", source=f"assert add({i}, 1) == {i + 1}") for i in range(tests)]
    seconds = {}
    with Sandbox(workers=1, isolation="bwrap", limits=Limits(timeout_s=timeout_s)) as sandbox:
        for name, stop in (("every test", False), ("first-failure stop", True)):
            start = time.perf_counter()
            evaluation = sandbox.evaluate(LOOPING, hidden, stop_at_first_failure=stop)
            seconds[name] = time.perf_counter() - start
            assert evaluation.reward == 0.0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--hidden-tests", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=Limits().timeout_s, help="s per test")
    args = parser.parse_args()
    rates = {
        "(a) new python3 per run, no isolation": runs_per_second(
            new_python, args.runs, args.workers
        ),
        "(b) new bwrap per run": runs_per_second(new_bwrap, args.runs, args.workers),
        "(c) warm workers, two-process judge": warm_workers(args.runs, args.workers),
    }
    print(
        f"{args.runs} runs each, {args.workers} concurrent, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'method':40} {'runs/s':>8} {'ms/run/core':>12} {'vs (a)':>7}")
    baseline = rates["(a) new python3 per run, no isolation"]
    for name, rate in rates.items():
        print(f"{name:40} {rate:8.1f} {1000 * args.workers / rate:12.2f} {rate / baseline:6.1f}x")
    seconds = looping_verdict_seconds(args.hidden_tests, args.timeout)
    print(
        f"\nA program looping forever, {args.hidden_tests} hidden tests, {args.timeout:g} s limit "
        "per test, one worker:"
    )
    print(" | ".join(f"{name}: {value:.1f} s" for name, value in seconds.items()))


if __name__ == "__main__":
    main()
