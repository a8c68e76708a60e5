"""Where decoding stops for a program: the ``` that closes the first fenced block.

One rule for every rollout engine (transformers, llama.cpp, vLLM): the text of each row is
grown by decoding one new token at a time (linear in the length), and the row stops at the
token whose text closes the first block (`pot.prompts.closing_fence_end`).
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from pot.prompts import closing_fence_end


class FenceStop:
    """Per-row closing-fence detection; `lengths[row]`: the tokens up to and including the one
    that closed the row's first block (None while it is open)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, rows: int) -> None:
        self.tokenizer = tokenizer
        self.texts = [""] * rows
        self.counts = [0] * rows
        self.lengths: list[int | None] = [None] * rows

    def add(self, row: int, token: int) -> bool:
        """Feed the row's next token; True when it closes the row's first block."""
        self.counts[row] += 1
        self.texts[row] += self.tokenizer.decode([token])
        if closing_fence_end(self.texts[row]) is None:
            return False
        self.lengths[row] = self.counts[row]
        return True


def fence_length(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> int | None:
    """Tokens of `ids` up to the one that closes the first fenced block (None if none does)."""
    fence = FenceStop(tokenizer, 1)
    return next((i + 1 for i, token in enumerate(ids) if fence.add(0, token)), None)
