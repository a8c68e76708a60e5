"""Cost of one PoT iteration at k = 3 on this machine, beside the paper's GPU figures.

    python benchmarks/iteration_cost.py [--model default] [--iterations 3]

Per iteration (one MBPP problem each): sample k programs (one batched generate call), run
them on the public test in the sandbox, one GRPO update (E epochs). The update is split into
its no-grad forward passes (pi_old and reference log-probs) and its E training steps, to give
a backward/forward ratio comparable with the paper's (LoRA backward 281 ms / forward
192.66 ms = 1.46; 473.66 ms per iteration at k = 3, Qwen3-4B on a GPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import LoraPolicy
from pot.policy.engines import load_policy
from pot.prompts import build_prompt, extract_code
from pot.sandbox import Sandbox
from pot.tasks.mbpp import load_mbpp

PAPER = {"forward_ms": 192.66, "backward_ms": 281.0, "iteration_ms": 473.66}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", default="mbpp/601,mbpp/602,mbpp/603")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = load_policy(args.model, "transformers")
    trainer = GRPOTrainer(policy, GRPOConfig())
    tasks = {t.id: t for t in load_mbpp("train")}
    print(
        f"model {args.model}, k={args.k}, E={trainer.config.epochs}, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = []
    with Sandbox() as sandbox:
        for iteration, task_id in enumerate(args.tasks.split(",")[: args.iterations]):
            trainer.reset()
            task = tasks[task_id]
            prompt = build_prompt(task)
            start = time.perf_counter()
            completions = policy.sample(
                prompt, args.k, max_new_tokens=args.max_new_tokens, seed=iteration
            )
            generate_s = time.perf_counter() - start
            start = time.perf_counter()
            evaluations = [sandbox.evaluate_task(task, extract_code(c.text)) for c in completions]
            execute_s = time.perf_counter() - start
            rewards = [e.reward for e in evaluations]
            # timing only: an all-equal group would be skipped, so it gets distinct rewards
            update_rewards = rewards if len(set(rewards)) > 1 else [1.0, 0.0, 0.0][: args.k]
            prompt_ids = policy.encode_prompt(prompt)
            sequences = [c.token_ids for c in completions]
            start = time.perf_counter()
            with torch.no_grad():
                policy.learner.sequence_logprobs(prompt_ids, sequences)
            forward_s = time.perf_counter() - start
            start = time.perf_counter()
            train_step(policy, prompt_ids, sequences)
            train_step_s = time.perf_counter() - start
            stats = trainer.update(prompt, completions, update_rewards)
            row = {
                "task": task_id,
                "tokens": sum(len(s) for s in sequences),
                "prompt_tokens": len(prompt_ids),
                "rewards": rewards,
                "generate_s": generate_s,
                "execute_s": execute_s,
                "update_s": stats.seconds,
                "forward_s": forward_s,
                "backward_s": train_step_s - forward_s,
            }
            rows.append(row)
            print(
                f"{task_id}: {row['tokens']} tokens (prompt {row['prompt_tokens']}), rewards "
                f"{rewards}, generate {generate_s:.2f} s, execute {execute_s:.3f} s, "
                f"update {stats.seconds:.2f} s, forward {forward_s * 1e3:.0f} ms, "
                f"backward {row['backward_s'] * 1e3:.0f} ms"
            )

    mean = {key: statistics.mean(r[key] for r in rows) for key in rows[0] if key.endswith("_s")}
    iteration_s = mean["generate_s"] + mean["execute_s"] + mean["update_s"]
    print(f"\nmeans over {len(rows)} iterations (load average {os.getloadavg()[0]:.2f}):")
    print(
        f"  generate {mean['generate_s']:.2f} s  execute {mean['execute_s']:.3f} s  "
        f"update {mean['update_s']:.2f} s  iteration {iteration_s:.2f} s"
    )
    print(f"  update / generate = {mean['update_s'] / mean['generate_s']:.2f}")
    print(
        f"  backward / forward = {mean['backward_s'] / mean['forward_s']:.2f} "
        f"(paper: {PAPER['backward_ms'] / PAPER['forward_ms']:.2f})"
    )
    print(
        f"  paper, GPU: forward {PAPER['forward_ms']} ms, backward {PAPER['backward_ms']} ms, "
        f"iteration {PAPER['iteration_ms']} ms"
    )


def train_step(policy: LoraPolicy, prompt_ids: list[int], sequences: list[list[int]]):
    """One forward + backward through the adapter, as in a GRPO epoch (no optimizer step)."""
    logp, mask = policy.learner.sequence_logprobs(prompt_ids, sequences)
    (logp.sum() / mask.sum()).backward()
    for param in policy.learner.trainable_parameters():
        param.grad = None


if __name__ == "__main__":
    main()
