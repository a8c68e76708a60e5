"""Per-token log-probs of a GRPO group, with and without gradient, in token-bounded chunks.

Two ways to compute the same numbers (equal up to rounding; tests/test_grpo.py checks it in
float64):
- `SharedPrefixScorer`: the siblings share one prompt. Each pass runs the prompt once, then
  all completions batched on its keys/values; the gradient flows back through the prompt.
- `PerSequenceScorer`: each row runs its own prompt + completion. The reference computation,
  and the fallback for groups whose siblings have different prompts.

A pass may be split into chunks of rows (micro-batches) so that no forward holds more than a
token budget; with gradient, each chunk is backpropagated as soon as it is done and the
gradients add up to those of the whole group.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pot.policy import Learner

ChunkLoss = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]  # chunk, logp, mask


def chunk_rows(costs: list[int], budget: int | None) -> list[list[int]]:
    """Consecutive rows grouped so that rows x the widest row's cost stays within `budget`
    (a row over budget on its own gets its own chunk); None: one chunk."""
    if budget is None:
        return [list(range(len(costs)))]
    chunks: list[list[int]] = []
    current: list[int] = []
    for row, cost in enumerate(costs):
        widest = max([costs[r] for r in current] + [cost])
        if current and widest * (len(current) + 1) > budget:
            chunks.append(current)
            current = []
        current.append(row)
    return [*chunks, current] if current else chunks


class SharedPrefixScorer:
    def __init__(
        self,
        learner: Learner,
        prompt_ids: list[int],
        completions: list[list[int]],
        budget: int | None,
    ) -> None:
        self.learner = learner
        self.prompt_ids = prompt_ids
        self.completions = completions
        self.chunks = chunk_rows([len(ids) for ids in completions], budget)
        self.prompt_tokens = len(prompt_ids)  # prompt positions one pass runs

    def evaluate(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One no-grad pass: (logp, mask) per chunk."""
        with torch.no_grad():
            prompt = self.learner.prompt_pass(self.prompt_ids)
            return [self._chunk(prompt, rows) for rows in self.chunks]

    def train_pass(self, chunk_loss: ChunkLoss) -> None:
        """One pass with gradient: backward of each chunk's loss, then of the shared prompt."""
        prompt = self.learner.prompt_pass(self.prompt_ids)
        leaves = prompt.detached()
        for index, rows in enumerate(self.chunks):
            logp, mask = self._chunk(leaves, rows)
            chunk_loss(index, logp, mask).backward()
        prompt.backward_from(leaves)

    def _chunk(self, prompt, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.learner.completion_pass(prompt, [self.completions[row] for row in rows])


class PerSequenceScorer:
    def __init__(
        self,
        learner: Learner,
        prompts_ids: list[list[int]],
        completions: list[list[int]],
        budget: int | None,
    ) -> None:
        self.learner = learner
        self.prompts_ids = prompts_ids
        self.completions = completions
        costs = [len(p) + len(c) for p, c in zip(prompts_ids, completions, strict=True)]
        self.chunks = chunk_rows(costs, budget)
        self.prompt_tokens = sum(len(ids) for ids in prompts_ids)

    def evaluate(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        with torch.no_grad():
            return [self._chunk(rows) for rows in self.chunks]

    def train_pass(self, chunk_loss: ChunkLoss) -> None:
        with self.learner.checkpointed():
            for index, rows in enumerate(self.chunks):
                logp, mask = self._chunk(rows)
                chunk_loss(index, logp, mask).backward()

    def _chunk(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.learner.sequence_logprobs_each(
            [self.prompts_ids[row] for row in rows], [self.completions[row] for row in rows]
        )


Scorer = SharedPrefixScorer | PerSequenceScorer
