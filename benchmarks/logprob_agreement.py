"""Per-token log-probs of the same sampled tokens: llama.cpp's own logits vs the training model.

    python benchmarks/logprob_agreement.py [--tasks 6] [--k 3] [--max-new-tokens 128]

llama.cpp samples k programs per MBPP prompt with the live adapter (the fresh one, then one
with seeded random LoRA B matrices, so that the adapter matters); the same tokens are scored by
transformers (the training model, fp32). Reports the mean and max absolute difference of the
per-token log-probs, of the per-program mean log-prob (what the search priors use), and how
often both give the siblings the same prior order.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pot.evolve import GRPOConfig, GRPOTrainer
from pot.policy import LoraPolicy
from pot.policy.engines import load_policy
from pot.prompts import build_prompt
from pot.tasks.mbpp import load_mbpp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=6, help="MBPP prompt-split problems")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/logprob_agreement.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_policy("default", "llamacpp", options={"llamacpp.threads": str(args.threads)})
    trainer = GRPOTrainer(policy, GRPOConfig())
    prompts = [build_prompt(task) for task in load_mbpp("prompt")[: args.tasks]]
    rows = []
    for adapter in ("fresh", "moved"):
        if adapter == "moved":
            move_adapter(policy)
        rows.append({"adapter": adapter, **agreement(policy, prompts, args)})
    trainer.reset()
    for row in rows:
        print(
            f"adapter {row['adapter']:<6} {row['tokens']} tokens: per-token |diff| mean "
            f"{row['token_mean']:.4f} max {row['token_max']:.3f} nats; per-program mean "
            f"log-prob |diff| mean {row['program_mean']:.4f} max {row['program_max']:.4f}; "
            f"same sibling order {row['same_order']}/{row['groups']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as file:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args) | {"out": ""}}
        file.write(json.dumps(record | {"rows": rows}) + "\n")


def move_adapter(policy: LoraPolicy, scale: float = 0.02) -> None:
    """Seeded random LoRA B matrices: an adapter whose effect on the logits is not zero."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in policy.learner.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    policy.version += 1


def agreement(policy: LoraPolicy, prompts: list, args) -> dict:
    token_diffs, program_diffs, same_order = [], [], 0
    for seed, prompt in enumerate(prompts):
        completions = policy.sample(prompt, args.k, max_new_tokens=args.max_new_tokens, seed=seed)
        prompt_ids = policy.encode_prompt(prompt)
        ids = [c.token_ids for c in completions]
        scored = policy.completion_logprobs(prompt_ids, ids)
        own_means, their_means = [], []
        for completion, theirs in zip(completions, scored, strict=True):
            own = torch.tensor(completion.logprobs, dtype=torch.float64)
            token_diffs.append((own - theirs.double()).abs())
            own_means.append(own.mean().item())
            their_means.append(theirs.double().mean().item())
            program_diffs.append(abs(own_means[-1] - their_means[-1]))
        order = sorted(range(len(ids)), key=own_means.__getitem__)
        same_order += order == sorted(range(len(ids)), key=their_means.__getitem__)
    diffs = torch.cat(token_diffs)
    return {
        "tokens": len(diffs),
        "token_mean": diffs.mean().item(),
        "token_max": diffs.max().item(),
        "program_mean": sum(program_diffs) / len(program_diffs),
        "program_max": max(program_diffs),
        "same_order": same_order,
        "groups": len(prompts),
    }


if __name__ == "__main__":
    main()
