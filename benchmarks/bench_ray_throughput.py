"""Benchmark runner throughput: serial versus Ray actors, same jobs, same machine.

The policy is the tiny random model of `pot.policy.tiny` (saved to a temporary directory and
loaded by each worker as any model directory is), so a job costs little generation and the
figures show the runner's own overhead and parallel speed-up: the sandbox, the JSONL appends,
Ray's scheduling. A real model makes every job far longer and the overhead relatively smaller.

    python benchmarks/bench_ray_throughput.py [--tasks 10] [--workers 2] [--programs 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray

from pot.bench import BenchSpec, ModelPolicy, RayExecutor, SerialExecutor, run_bench
from pot.policy.tiny import tiny_random_model
from pot.tasks import load_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--programs", type=int, default=8)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="pot-ray-bench-"))
    model_dir = scratch / "tiny-model"
    model, tokenizer = tiny_random_model(seed=0, context_length=4096)  # characters are tokens
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    spec = BenchSpec(
        tasks="mbpp:validation",
        methods=["zero-shot", "best-of-n", "self-repair", "search-only", "pot"],
        budget=f"programs={args.programs}",
        limit=args.tasks,
        model=str(model_dir),
        overrides={
            "max_new_tokens": "32",
            "search.max_new_tokens": "32",
            "max_prompt_tokens": "3000",
            "search.max_prompt_tokens": "3000",
        },
    )
    tasks = load_tasks(spec.tasks, limit=args.tasks)
    jobs = len(tasks) * len(spec.methods)
    print(f"{jobs} jobs ({len(tasks)} tasks x {len(spec.methods)} methods), {os.cpu_count()} CPUs")

    start = time.perf_counter()
    run_bench(scratch / "serial", spec, tasks, SerialExecutor(ModelPolicy(str(model_dir))))
    serial = time.perf_counter() - start
    print(f"serial:            {serial:6.1f} s  {jobs / serial:5.2f} jobs/s (with model load)")

    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start
    executor = RayExecutor(ModelPolicy(str(model_dir)), workers=args.workers)
    start = time.perf_counter()
    run_bench(scratch / "ray", spec, tasks, executor)
    on_ray = time.perf_counter() - start
    ray.shutdown()
    print(f"ray init:          {started:6.1f} s")
    print(
        f"ray, {args.workers} actors:    {on_ray:6.1f} s  {jobs / on_ray:5.2f} jobs/s "
        f"(with actor start and model loads); speed-up {serial / on_ray:.2f}x"
    )


if __name__ == "__main__":
    main()
