"""Go/no-go: does test-time GRPO on the public test raise the hidden-test success rate?

    python benchmarks/grpo_learning.py screen [--candidates 30]   # base rates, 8 samples each
    python benchmarks/grpo_learning.py run --tasks mbpp/624,...    # before / after per task
    python benchmarks/grpo_learning.py run --quick                # 1 screened task, small
    python benchmarks/grpo_learning.py run --tasks mbpp/945 --groups 12 --dtype bfloat16
    python benchmarks/grpo_learning.py report

MBPP dev problems (validation + train, the shortest reference solutions first). `screen`
samples each candidate from the base model and keeps those whose hidden-test success rate is
within [--low, --high]. Screening only picks candidates, so it samples the embedded GGUF file
with llama.cpp when llama-cpp-python is installed (same weights and prompt tokens, plain
temperature sampling, about 6x faster on a CPU); every rate that `run` reports comes from the
transformers policy that is trained.

`run` gives each task a fresh adapter, measures the success rate on the hidden tests over
--samples programs, runs --groups GRPO groups of --group programs (reward: fraction of the
public tests passed; MBPP's public test is test_list[0]), then measures again with the same
sampling seeds. Results append to runs/grpo_learning/*.jsonl and a task already done with the
same settings is skipped, so runs can be split and resumed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import LoraPolicy
from pot.policy.engines import load_policy, resolve_engine
from pot.policy.models import gguf_path
from pot.prompts import build_prompt, extract_code
from pot.sandbox import Sandbox
from pot.tasks import Task
from pot.tasks.mbpp import load_mbpp

OUT = Path("runs/grpo_learning")


@dataclass
class RunSettings:
    samples: int = 32  # programs per success-rate measurement
    groups: int = 16  # GRPO groups sampled (all-equal groups are skipped by the trainer)
    group: int = 3
    temperature: float = 0.7
    max_new_tokens: int = 256
    lr: float = 1e-4
    lora_r: int = 8
    beta: float = 0.02
    epochs: int = 3
    engine: str = "transformers"  # who samples (training is always transformers + PEFT)
    dtype: str = "float32"  # GRPOConfig.dtype of the updates (results before it existed: fp32)


def mbpp_dev_tasks() -> list[Task]:
    tasks = load_mbpp("validation") + load_mbpp("train")
    return sorted(tasks, key=lambda t: len(t.metadata.get("reference_solution", "")))


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(record) + "\n")


def sample_programs(
    policy: LoraPolicy, prompt: list[dict], count: int, settings: RunSettings, seed: int
) -> list[str]:
    programs: list[str] = []
    for batch in range(0, count, 8):
        completions = policy.sample(
            prompt,
            min(8, count - batch),
            temperature=settings.temperature,
            max_new_tokens=settings.max_new_tokens,
            seed=seed + batch,
        )
        programs += [extract_code(c.text) for c in completions]
    return programs


def llamacpp_sampler(policy: LoraPolicy, gguf: Path, settings: RunSettings):
    """Base-model sampling with llama.cpp on the model's GGUF file, for screening only."""
    from llama_cpp import Llama

    llm = Llama(str(gguf), n_ctx=2048, n_threads=1, seed=0, verbose=False)

    def sample(prompt: list[dict], count: int, seed: int) -> list[str]:
        tokens = policy.encode_prompt(prompt)
        programs = []
        for index in range(count):
            llm.set_seed(seed + index)
            out = llm.create_completion(
                tokens, max_tokens=settings.max_new_tokens, temperature=settings.temperature,
                top_p=1.0, top_k=0, min_p=0.0, stop=["\n```"],
            )  # fmt: skip
            programs.append(extract_code(out["choices"][0]["text"] + "\n```"))
        return programs

    return sample


def hidden_successes(sandbox: Sandbox, task: Task, programs: list[str]) -> int:
    jobs = [(p, task.hidden_tests, task.entry_point, task.setup_code) for p in programs]
    return sum(e.all_passed for e in sandbox.evaluate_many(jobs))


def public_rewards(sandbox: Sandbox, task: Task, programs: list[str]) -> list[float]:
    jobs = [(p, task.public_tests, task.entry_point, task.setup_code) for p in programs]
    return [e.reward for e in sandbox.evaluate_many(jobs)]


def screen(args: argparse.Namespace) -> None:
    path = OUT / "screen.jsonl"
    done = {r["task"] for r in read_jsonl(path)}
    policy = load_policy(args.model, "transformers")
    settings = RunSettings(max_new_tokens=args.max_new_tokens)
    gguf = gguf_path(args.model)
    sample = (
        llamacpp_sampler(policy, gguf, settings)
        if gguf is not None and importlib.util.find_spec("llama_cpp")
        else lambda prompt, count, seed: sample_programs(policy, prompt, count, settings, seed)
    )
    with Sandbox() as sandbox:
        for task in mbpp_dev_tasks()[: args.candidates]:
            if task.id in done:
                continue
            start = time.perf_counter()
            programs = sample(build_prompt(task), args.samples, 0)
            successes = hidden_successes(sandbox, task, programs)
            record = {"task": task.id, "samples": args.samples, "successes": successes}
            append_jsonl(path, record)
            print(f"{task.id}: {successes}/{args.samples} ({time.perf_counter() - start:.0f} s)")
    selected = screened_in_range(args.low, args.high)
    print(f"in [{args.low:.0%}, {args.high:.0%}]: {','.join(selected)}")


def screened_in_range(low: float, high: float) -> list[str]:
    return [
        r["task"]
        for r in read_jsonl(OUT / "screen.jsonl")
        if low <= r["successes"] / r["samples"] <= high
    ]


def run(args: argparse.Namespace) -> None:
    settings = RunSettings(
        samples=args.samples,
        groups=args.groups,
        group=args.group,
        max_new_tokens=args.max_new_tokens,
        lr=args.lr,
        lora_r=args.lora_r,
        beta=args.beta,
        engine=resolve_engine(args.model, args.engine),
        dtype=args.dtype,
    )
    task_ids = args.tasks.split(",") if args.tasks else screened_in_range(args.low, args.high)
    if args.quick:
        task_ids = task_ids[:1]
    if not task_ids:
        raise SystemExit("no tasks: pass --tasks or run `screen` first")
    path = OUT / "results.jsonl"
    done = {r["task"] for r in read_jsonl(path) if same_settings(r, settings)}
    tasks = {t.id: t for t in mbpp_dev_tasks()}
    policy = load_policy(args.model, settings.engine)
    config = GRPOConfig(
        lr=settings.lr, lora_r=settings.lora_r, lora_alpha=2 * settings.lora_r,
        beta=settings.beta, epochs=settings.epochs, dtype=settings.dtype,
    )  # fmt: skip
    trainer = GRPOTrainer(policy, config)
    print(
        f"settings {asdict(settings)}, engine {policy.engine.name}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with Sandbox() as sandbox:
        for task_id in task_ids:
            if task_id in done:
                print(f"{task_id}: already in {path}")
                continue
            record = run_task(tasks[task_id], policy, trainer, sandbox, settings)
            append_jsonl(path, record)
    report(settings)


def run_task(
    task: Task,
    policy: LoraPolicy,
    trainer: GRPOTrainer,
    sandbox: Sandbox,
    settings: RunSettings,
) -> dict:
    start = time.perf_counter()
    trainer.reset()
    prompt = build_prompt(task)
    before = hidden_successes(
        sandbox, task, sample_programs(policy, prompt, settings.samples, settings, seed=0)
    )
    updates = []
    for group_index in range(settings.groups):
        completions = policy.sample(
            prompt,
            settings.group,
            temperature=settings.temperature,
            max_new_tokens=settings.max_new_tokens,
            seed=10_000 + group_index,
        )
        rewards = public_rewards(sandbox, task, [extract_code(c.text) for c in completions])
        stats = trainer.update(prompt, completions, rewards)
        updates.append({"rewards": rewards, **asdict(stats)})
        print(
            f"  {task.id} group {group_index}: rewards {rewards} "
            f"{'skipped' if stats.skipped else f'kl {stats.kl:.4f} loss {stats.loss:+.4f}'}"
        )
    after = hidden_successes(
        sandbox, task, sample_programs(policy, prompt, settings.samples, settings, seed=0)
    )
    seconds = time.perf_counter() - start
    applied = sum(not u["skipped"] for u in updates)
    print(
        f"{task.id}: hidden success {before}/{settings.samples} -> {after}/{settings.samples} "
        f"after {applied} applied updates of {settings.groups} groups ({seconds:.0f} s, "
        f"load average {os.getloadavg()[0]:.2f})"
    )
    return {
        "task": task.id,
        "settings": asdict(settings),
        "before": before,
        "after": after,
        "applied_updates": applied,
        "updates": updates,
        "seconds": seconds,
    }


def same_settings(record: dict, settings: RunSettings) -> bool:
    return {"dtype": "float32"} | record["settings"] == asdict(settings)


def report(settings: RunSettings | None = None) -> None:
    records = read_jsonl(OUT / "results.jsonl")
    if settings is not None:
        records = [r for r in records if same_settings(r, settings)]
    if not records:
        print("no results yet")
        return
    print(
        f"\n{'task':<10} {'lr':>7} {'r':>3} {'beta':>5} {'dtype':>8} {'groups':>6} "
        f"{'applied':>7} {'before':>7} {'after':>7}"
    )
    for r in records:
        s = {"dtype": "float32"} | r["settings"]
        n = s["samples"]
        print(
            f"{r['task']:<10} {s['lr']:>7.0e} {s['lora_r']:>3} {s['beta']:>5} {s['dtype']:>8} "
            f"{s['groups']:>6} {r['applied_updates']:>7} {r['before'] / n:>7.1%} "
            f"{r['after'] / n:>7.1%}"
        )
    before = sum(r["before"] for r in records) / sum(r["settings"]["samples"] for r in records)
    after = sum(r["after"] for r in records) / sum(r["settings"]["samples"] for r in records)
    print(f"{'mean':<10} {'':>36} {before:>7.1%} {after:>7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--low", type=float, default=0.05)
    parser.add_argument("--high", type=float, default=0.60)
    commands = parser.add_subparsers(dest="command", required=True)
    screen_parser = commands.add_parser("screen")
    screen_parser.add_argument("--candidates", type=int, default=30)
    screen_parser.add_argument("--samples", type=int, default=8)
    screen_parser.add_argument("--max-new-tokens", type=int, default=RunSettings.max_new_tokens)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--tasks", default="", help="comma-separated; default: screened")
    run_parser.add_argument("--engine", default="auto", help="who samples: auto, transformers, ...")
    run_parser.add_argument("--quick", action="store_true", help="1 task, 16 samples, 6 groups")
    defaults = RunSettings()
    run_parser.add_argument("--samples", type=int, default=defaults.samples)
    run_parser.add_argument("--groups", type=int, default=defaults.groups)
    run_parser.add_argument("--group", type=int, default=defaults.group)
    run_parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    run_parser.add_argument("--lr", type=float, default=defaults.lr)
    run_parser.add_argument("--lora-r", type=int, default=defaults.lora_r)
    run_parser.add_argument("--beta", type=float, default=defaults.beta)
    run_parser.add_argument(
        "--dtype", default=defaults.dtype, help="float32, bfloat16 or auto (GRPOConfig.dtype)"
    )
    commands.add_parser("report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "run" and args.quick:
        args.samples, args.groups = 16, 6
    {"screen": screen, "run": run, "report": lambda _: report()}[args.command](args)


if __name__ == "__main__":
    main()
