"""Hostile programs that SIGSTOP the sandbox's other processes, each followed by correct
programs in the same workers: how often a correct program is failed afterwards.

The hostile suite runs each stopper once (tests/test_sandbox_hostile.py); a race shows only
in a loop. Before the judge was resumed right before each test, a detached stopper could stop
it again after its post-answer resume: 2 of the 240 correct programs of 20 rounds failed.

Usage:
    python benchmarks/stopper_stress.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_sandbox_hostile import ASSERT_F, LIMITS, STOPPERS  # noqa: E402

from pot.sandbox import Sandbox  # noqa: E402

CORRECT = "def f():\n    return 1\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    failed = 0
    with Sandbox(workers=2, isolation="bwrap", limits=LIMITS) as box:
        for round_ in range(args.rounds):
            for name, program in STOPPERS.items():
                box.evaluate(program, ASSERT_F)
                for _ in range(2 * box.workers):
                    evaluation = box.evaluate(CORRECT, ASSERT_F)
                    if not evaluation.all_passed:
                        failed += 1
                        print(f"round {round_}: after {name!r}: {evaluation.verdict.value}")
    checks = args.rounds * len(STOPPERS) * 2 * 2
    print(f"{failed} of {checks} correct programs failed after a stopper")


if __name__ == "__main__":
    main()
