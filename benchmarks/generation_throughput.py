"""Generated tokens per second of the transformers engine's sampling, single stream and batched.

    python benchmarks/generation_throughput.py [--model default] [--batches 1,3,8]

Each batch samples an MBPP prompt with the real stopping rule (closing fence / eos), so the
figure is what a search method sees: completion tokens / wall seconds; a batch runs until
its longest completion ends ("steps"). The load average is printed because the CPU may be
shared with other work.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from pot.policy.engines import load_policy
from pot.prompts import build_prompt
from pot.tasks.mbpp import load_mbpp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--batches", default="1,3,8")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--task", default="mbpp/601")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = load_policy(args.model, "transformers")
    task = next(t for t in load_mbpp("train") if t.id == args.task)
    prompt = build_prompt(task)
    print(
        f"model {args.model}, prompt {len(policy.encode_prompt(prompt))} tokens, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.2f}"
    )
    policy.sample(prompt, 1, max_new_tokens=8, seed=0)  # warm-up

    print(f"{'batch':>5} {'tokens':>7} {'steps':>6} {'seconds':>8} {'tokens/s':>9} {'steps/s':>8}")
    for batch in [int(b) for b in args.batches.split(",")]:
        tokens = steps = 0
        seconds = 0.0
        for repeat in range(args.repeats):
            start = time.perf_counter()
            completions = policy.sample(
                prompt, batch, max_new_tokens=args.max_new_tokens, seed=repeat
            )
            seconds += time.perf_counter() - start
            tokens += sum(len(c.token_ids) for c in completions)
            steps += max(len(c.token_ids) for c in completions)
        print(
            f"{batch:>5} {tokens:>7} {steps:>6} {seconds:>8.1f} {tokens / seconds:>9.1f} "
            f"{steps / seconds:>8.1f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
