"""Rollout engines side by side on the embedded model: tokens/s, adapter swap, one PoT iteration.

    python benchmarks/engine_speed.py [--threads 2] [--k 3] [--max-new-tokens 256]

1. Generated tokens per second, single stream and k siblings of one prompt:
   transformers (the transformers engine, LoRA attached), our llama.cpp engine with the live
   adapter (after one GRPO update; decoding and llama.cpp's own log-probs), and raw llama.cpp
   (the same decoding loop, no adapter, no log-probs: the limit here).
2. Adapter swap latency per GRPO update: GGUF conversion + load into the running context.
3. One PoT iteration at k with the llama.cpp engine, at depth 1 (the problem alone) and at
   depth 3 (the problem and two earlier attempts with their feedback: long prompts), by two
   paths side by side on the same prompts:
   - old: log-probs for the priors from a transformers forward, GRPO per sequence in fp32
     with separate pi_old and reference passes (GRPOConfig(path="per_sequence"));
   - new: log-probs from llama.cpp's logits, prefix-shared GRPO (GRPOConfig() defaults: dtype
     auto = bf16 where the CPU has it natively).
   Seconds of sampling, log-probs, execution, update and adapter swap; update / sampling.

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

import torch

from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import LoraPolicy
from pot.policy.engines import load_policy
from pot.policy.gguf_lora import write_gguf_lora
from pot.policy.llamacpp_engine import LlamaCppDecoder, Sampler
from pot.policy.models import gguf_path
from pot.policy.rollout import Sampling
from pot.prompts import Attempt, build_prompt, extract_code
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
    parser.add_argument("--depths", default="1,3", help="tree depths of the PoT iterations")
    parser.add_argument("--dtype", default="auto", help="the new path's training dtype")
    parser.add_argument("--out", type=Path, default=Path("runs/engine_speed.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = {task.id: task for task in load_mbpp("train")}
    chosen = [tasks[task_id] for task_id in args.tasks.split(",")]
    prompt = build_prompt(chosen[0])
    load_before = os.getloadavg()[0]

    reference = load_policy("default", "transformers")
    llama = llamacpp_policy(args.threads)
    raw = LlamaCppDecoder(gguf_path("default"), threads=args.threads)
    engines = {"transformers": reference, "llamacpp": llama}
    trainers = {name: GRPOTrainer(policy, GRPOConfig()) for name, policy in engines.items()}
    print(
        f"embedded model, prompt {len(reference.encode_prompt(prompt))} tokens, "
        f"{args.threads} threads, load average {load_before:.2f}"
    )

    # one update first, so that llama.cpp samples with a live (non-zero) adapter
    group = llama.sample(prompt, args.k, max_new_tokens=32, seed=99)
    trainers["llamacpp"].update(prompt, group, [1.0] + [0.0] * (args.k - 1))
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
    for n in (1, args.k):
        rate = {row["engine"]: row["tokens_per_s"] for row in throughput if row["streams"] == n}
        ours = rate["llama.cpp + LoRA (ours)"] / rate["llama.cpp raw"]
        print(f"llama.cpp with the live adapter / raw llama.cpp, {n} streams: {ours:.2f}x")

    swaps = swap_latency(llama, trainers["llamacpp"], prompt, args)
    print(
        f"\nadapter swap per update ({len(swaps)} updates): convert "
        f"{mean_ms(swaps, 'convert_s'):.0f} ms + load {mean_ms(swaps, 'load_s'):.0f} ms = "
        f"{mean_ms(swaps, 'total_s'):.0f} ms; GGUF file {swaps[0]['bytes'] / 1e6:.1f} MB"
    )

    paths = {
        "old": (llama, GRPOConfig(path="per_sequence", dtype="float32"), "transformers"),
        "new": (
            llamacpp_policy(args.threads),
            GRPOConfig(dtype=args.dtype),
            "llamacpp",
        ),
    }
    path_trainers = {}
    for name, (policy, config, source) in paths.items():
        policy.engine.config.logprobs_from = source
        path_trainers[name] = GRPOTrainer(policy, config)
    iterations = []
    with Sandbox() as sandbox:
        for index, task in enumerate(chosen):
            for depth in (int(d) for d in args.depths.split(",")):
                prompt = depth_prompt(paths["new"][0], sandbox, task, depth, args, seed=index)
                for name, trainer in path_trainers.items():
                    policy = trainer.policy
                    row = iteration(policy, trainer, sandbox, task, prompt, args, seed=index)
                    iterations.append({"path": name, "task": task.id, "depth": depth, **row})
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


def llamacpp_policy(threads: int) -> LoraPolicy:
    return load_policy("default", "llamacpp", options={"llamacpp.threads": str(threads)})


def sampled(policy: LoraPolicy, prompt: str, n: int, room: int, seed: int) -> int:
    completions = policy.sample(prompt, n, max_new_tokens=room, seed=seed)
    return sum(len(completion.token_ids) for completion in completions)


def raw_tokens(
    decoder: LlamaCppDecoder, policy: LoraPolicy, prompt: str, n: int, room: int, seed: int
) -> int:
    """Plain llama.cpp decoding of the same prompt: no adapter, no log-probs, eos stops."""
    prompt_ids = policy.encode_prompt(prompt)
    sampler = Sampler(Sampling(seed=seed))
    sampler.start(prompt_ids, n)
    eos = policy.learner.eos_token_ids
    outputs, _ = decoder.generate(
        prompt_ids, n, room, sampler, lambda row, token: token in eos, with_logprobs=False
    )
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
    policy: LoraPolicy, trainer: GRPOTrainer, prompt: str, args
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
            write_gguf_lora(policy.learner.model, policy.engine.gguf_base, path)
            convert_s = time.perf_counter() - start
            policy.engine.sync_adapter(policy.learner)
            total_s = policy.engine.swap_seconds[-1]
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


def depth_prompt(policy: LoraPolicy, sandbox: Sandbox, task, depth: int, args, seed: int):
    """The state's prompt at `depth`: the problem and depth - 1 earlier attempts, each a program
    the policy wrote for the previous state, with its feedback on the public tests."""
    attempts: list[Attempt] = []
    for _ in range(depth - 1):
        prompt = build_prompt(task, attempts)
        [completion] = policy.sample(prompt, 1, max_new_tokens=args.max_new_tokens, seed=seed)
        program = extract_code(completion.text)
        attempts.append(Attempt(program, sandbox.evaluate_task(task, program).feedback))
    return build_prompt(task, attempts)


def iteration(
    policy: LoraPolicy, trainer: GRPOTrainer, sandbox: Sandbox, task, prompt, args, seed: int
) -> dict[str, float]:
    """One expansion + update: sample k (log-probs as the path computes them for the priors),
    execute, one GRPO update (the second on this problem), swap the updated adapter into
    llama.cpp."""
    trainer.reset()
    policy.engine.sync_adapter(
        policy.learner
    )  # the reset adapter, so sampling does not pay for a swap
    start = time.perf_counter()
    completions = policy.sample(
        prompt, args.k, max_new_tokens=args.max_new_tokens, seed=seed, logprobs=False
    )
    sample_s = time.perf_counter() - start
    start = time.perf_counter()
    prompt_ids = policy.encode_prompt(prompt)
    if (
        policy.engine.config.logprobs_from == "transformers"
    ):  # else llama.cpp gave them while sampling
        policy.completion_logprobs(prompt_ids, [c.token_ids for c in completions])
    logprobs_s = time.perf_counter() - start
    start = time.perf_counter()
    rewards = [sandbox.evaluate_task(task, extract_code(c.text)).reward for c in completions]
    execute_s = time.perf_counter() - start
    # timing only: an all-equal group would be skipped, so it gets distinct rewards
    update_rewards = rewards if len(set(rewards)) > 1 else [1.0] + [0.0] * (args.k - 1)
    # an untimed update first: the timed one is a mid-search update (the adapter has moved, so
    # the base-model reference needs its own pass), not the cheaper first one
    trainer.update(prompt, completions, update_rewards)
    start = time.perf_counter()
    stats = trainer.update(prompt, completions, update_rewards)
    update_s = time.perf_counter() - start
    start = time.perf_counter()
    policy.engine.sync_adapter(policy.learner)
    swap_s = time.perf_counter() - start
    return {
        "prompt_tokens": len(prompt_ids),
        "tokens": sum(len(c.token_ids) for c in completions),
        "rewards": rewards,
        "sample_s": sample_s,
        "logprobs_s": logprobs_s,
        "execute_s": execute_s,
        "update_s": update_s,
        "swap_s": swap_s,
        "iteration_s": sample_s + logprobs_s + execute_s + update_s + swap_s,
        "update_path": stats.path,
        "update_dtype": stats.dtype,
        "forward_passes": stats.forward_passes,
        "backward_passes": stats.backward_passes,
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


STAGES = ("sample_s", "logprobs_s", "execute_s", "update_s", "swap_s", "iteration_s")


def print_iterations(rows: list[dict]) -> None:
    print(
        f"\n{'path':<5} {'depth':>5} {'task':<9} {'prompt':>6} {'tokens':>6} {'sample':>7} "
        f"{'logp':>6} {'exec':>6} {'update':>7} {'swap':>6} {'total':>7} {'upd/sam':>7} passes"
    )
    for row in rows:
        print(
            f"{row['path']:<5} {row['depth']:>5} {row['task']:<9} {row['prompt_tokens']:>6} "
            f"{row['tokens']:>6} {row['sample_s']:>7.2f} {row['logprobs_s']:>6.2f} "
            f"{row['execute_s']:>6.3f} {row['update_s']:>7.2f} {row['swap_s']:>6.3f} "
            f"{row['iteration_s']:>7.2f} {row['update_s'] / row['sample_s']:>7.2f} "
            f"{row['forward_passes']}F+{row['backward_passes']}B {row['update_dtype']}"
        )
    print("\nmeans per depth, and old / new (speed-up):")
    for depth in dict.fromkeys(row["depth"] for row in rows):
        means = {}
        for path in ("old", "new"):
            mine = [row for row in rows if row["depth"] == depth and row["path"] == path]
            means[path] = {key: statistics.mean(r[key] for r in mine) for key in STAGES}
            figures = "  ".join(f"{key[:-2]} {means[path][key]:.2f}" for key in STAGES)
            ratio = means[path]["update_s"] / means[path]["sample_s"]
            print(f"  depth {depth} {path}: {figures}  update/sample {ratio:.2f} (paper 1.46)")
        speedups = "  ".join(
            f"{key[:-2]} {means['old'][key] / max(means['new'][key], 1e-9):.2f}x"
            for key in ("update_s", "iteration_s")
        )
        print(f"  depth {depth} speed-up: {speedups}")


if __name__ == "__main__":
    main()
