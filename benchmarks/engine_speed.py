"""Rollout engines side by side on the embedded model: tokens/s, adapter swap, one PoT iteration.

    python benchmarks/engine_speed.py [--threads 2] [--k 3] [--max-new-tokens 256]

1. Generated tokens per second, single stream and k siblings of one prompt:
   transformers (TransformersPolicy.sample, LoRA attached), our llama.cpp engine with the LoRA
   attached (decoding + the training model's log-probs of what it sampled), and raw llama.cpp
   (the same decoding loop, no adapter, no log-probs: the limit here).
2. Adapter swap latency per GRPO update: GGUF conversion + load into the running context.
3. One PoT iteration at k: generate k programs, execute them on the public tests in the
   sandbox, one GRPO update, and (llama.cpp) the swap of the updated adapter; per engine.

Prints a table and appends one JSON record to runs/engine_speed.jsonl. The load average is
recorded because the cores may be shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import TransformersPolicy
from pot.policy.gguf_lora import write_gguf_lora
from pot.policy.llamacpp_policy import LlamaCppEngine, LlamaCppPolicy, Sampler
from pot.policy.models import gguf_path
from pot.prompts import build_prompt, extract_code
from pot.sandbox import Sandbox
from pot.tasks.mbpp import load_mbpp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--updates", type=int, default=3, help="swaps timed")
    parser.add_argument("--tasks", default="mbpp/601,mbpp/602")
    parser.add_argument("--out", type=Path, default=Path("runs/engine_speed.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = {task.id: task for task in load_mbpp("train")}
    chosen = [tasks[task_id] for task_id in args.tasks.split(",")]
    prompt = build_prompt(chosen[0])
    load_before = os.getloadavg()[0]

    reference = TransformersPolicy.load()
    llama = LlamaCppPolicy.load(threads=args.threads)
    raw = LlamaCppEngine(gguf_path("default"), threads=args.threads)
    engines = {"transformers": reference, "llamacpp": llama}
    trainers = {name: GRPOTrainer(policy, GRPOConfig()) for name, policy in engines.items()}
    print(
        f"embedded model, prompt {len(reference.encode_prompt(prompt))} tokens, "
        f"{args.threads} threads, load average {load_before:.2f}"
    )

    throughput = []
    for n in (1, args.k):
        runs = {
            "transformers + LoRA": lambda seed, room, n=n: sampled(
                reference, prompt, n, room, seed
            ),
            "llama.cpp + LoRA (ours)": lambda seed, room, n=n: sampled(
                llama, prompt, n, room, seed
            ),
            "llama.cpp raw": lambda seed, room, n=n: raw_tokens(raw, llama, prompt, n, room, seed),
        }
        for name, run in runs.items():
            figures = measure(run, args.repeats, args.max_new_tokens)
            throughput.append({"engine": name, "streams": n, **figures})
    print_throughput(throughput)

    swaps = swap_latency(llama, trainers["llamacpp"], prompt, args)
    print(
        f"\nadapter swap per update ({len(swaps)} updates): convert "
        f"{mean_ms(swaps, 'convert_s'):.0f} ms + load {mean_ms(swaps, 'load_s'):.0f} ms = "
        f"{mean_ms(swaps, 'total_s'):.0f} ms; GGUF file {swaps[0]['bytes'] / 1e6:.1f} MB"
    )

    iterations = []
    with Sandbox() as sandbox:
        for name, policy in engines.items():
            for index, task in enumerate(chosen):
                row = iteration(policy, trainers[name], sandbox, task, args, seed=index)
                iterations.append({"engine": name, "task": task.id, **row})
    print_iterations(iterations)

    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "threads": args.threads,
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "load_average": [load_before, os.getloadavg()[0]],
        "throughput": throughput,
        "swaps": swaps,
        "iterations": iterations,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as file:
        file.write(json.dumps(record) + "\n")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; appended to {args.out}")


def sampled(policy: TransformersPolicy, prompt: str, n: int, room: int, seed: int) -> int:
    completions = policy.sample(prompt, n, max_new_tokens=room, seed=seed)
    return sum(len(completion.token_ids) for completion in completions)


def raw_tokens(
    engine: LlamaCppEngine, policy: LlamaCppPolicy, prompt: str, n: int, room: int, seed: int
) -> int:
    """Plain llama.cpp decoding of the same prompt: no adapter, no log-probs, eos stops."""
    prompt_ids = policy.encode_prompt(prompt)
    sampler = Sampler(0.7, 1.0, 1.0, np.random.default_rng(seed))
    sampler.start(prompt_ids, n)
    eos = policy.eos_token_ids
    outputs, _ = engine.generate(prompt_ids, n, room, sampler, lambda row, token: token in eos)
    return sum(len(tokens) for tokens in outputs)


def measure(run: Callable[[int, int], int], repeats: int, room: int) -> dict[str, float]:
    run(0, 8)  # warm-up: first context, first kernels
    tokens, seconds = 0, 0.0
    for seed in range(repeats):
        start = time.perf_counter()
        tokens += run(seed, room)
        seconds += time.perf_counter() - start
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def swap_latency(
    policy: LlamaCppPolicy, trainer: GRPOTrainer, prompt: str, args
) -> list[dict[str, float]]:
    """Each update's swap as the engine does it (sync_adapter: GGUF conversion + load into
    the running context), and the conversion alone, timed once more on its own."""
    swaps = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adapter.gguf"
        for update in range(args.updates):
            group = policy.sample(prompt, args.k, max_new_tokens=32, seed=100 + update)
            trainer.update(prompt, group, [1.0] + [0.0] * (args.k - 1))
            start = time.perf_counter()
            write_gguf_lora(policy.model, policy.gguf_base, path)
            convert_s = time.perf_counter() - start
            policy.sync_adapter()
            total_s = policy.swap_seconds[-1]
            swaps.append(
                {
                    "convert_s": convert_s,
                    "load_s": total_s - convert_s,
                    "total_s": total_s,
                    "bytes": path.stat().st_size,
                }
            )
    trainer.reset()
    return swaps


def iteration(
    policy: TransformersPolicy, trainer: GRPOTrainer, sandbox: Sandbox, task, args, seed: int
) -> dict[str, float]:
    trainer.reset()
    prompt = build_prompt(task)
    swap_s = 0.0
    if isinstance(policy, LlamaCppPolicy):
        policy.sync_adapter()  # the reset adapter, so generate does not pay for a swap
    start = time.perf_counter()
    completions = policy.sample(prompt, args.k, max_new_tokens=args.max_new_tokens, seed=seed)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    rewards = [sandbox.evaluate_task(task, extract_code(c.text)).reward for c in completions]
    execute_s = time.perf_counter() - start
    # timing only: an all-equal group would be skipped, so it gets distinct rewards
    update_rewards = rewards if len(set(rewards)) > 1 else [1.0] + [0.0] * (args.k - 1)
    start = time.perf_counter()
    trainer.update(prompt, completions, update_rewards)
    train_s = time.perf_counter() - start
    if isinstance(policy, LlamaCppPolicy):
        start = time.perf_counter()
        policy.sync_adapter()
        swap_s = time.perf_counter() - start
    total = generate_s + execute_s + train_s + swap_s
    return {
        "tokens": sum(len(c.token_ids) for c in completions),
        "rewards": rewards,
        "generate_s": generate_s,
        "execute_s": execute_s,
        "train_s": train_s,
        "swap_s": swap_s,
        "iteration_s": total,
        "swap_share": swap_s / total,
    }


def mean_ms(rows: list[dict[str, float]], key: str) -> float:
    return 1e3 * statistics.mean(row[key] for row in rows)


def print_throughput(rows: list[dict]) -> None:
    print(f"\n{'engine':<26} {'streams':>7} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
    for row in rows:
        print(
            f"{row['engine']:<26} {row['streams']:>7} {row['tokens']:>7} "
            f"{row['seconds']:>8.2f} {row['tokens_per_s']:>9.1f}"
        )


def print_iterations(rows: list[dict]) -> None:
    print(
        f"\n{'engine':<13} {'task':<9} {'tokens':>6} {'generate':>9} {'execute':>8} "
        f"{'train':>7} {'swap':>6} {'total':>7} {'swap %':>7}"
    )
    for row in rows:
        print(
            f"{row['engine']:<13} {row['task']:<9} {row['tokens']:>6} {row['generate_s']:>9.2f} "
            f"{row['execute_s']:>8.3f} {row['train_s']:>7.2f} {row['swap_s']:>6.3f} "
            f"{row['iteration_s']:>7.2f} {100 * row['swap_share']:>6.2f}%"
        )
    for engine in dict.fromkeys(row["engine"] for row in rows):
        mine = [row for row in rows if row["engine"] == engine]
        means = {
            key: statistics.mean(r[key] for r in mine)
            for key in ("generate_s", "execute_s", "train_s", "swap_s", "iteration_s")
        }
        print(
            f"{engine:<13} {'mean':<9} {'':>6} {means['generate_s']:>9.2f} "
            f"{means['execute_s']:>8.3f} {means['train_s']:>7.2f} {means['swap_s']:>6.3f} "
            f"{means['iteration_s']:>7.2f} {100 * means['swap_s'] / means['iteration_s']:>6.2f}%"
        )


if __name__ == "__main__":
    main()
