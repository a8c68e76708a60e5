"""Where decoding of a row stops: at an eos token, or at the ``` that closes the first block.

One rule for every rollout engine (transformers, llama.cpp, vLLM): each row's text is grown by
decoding one new token at a time (linear in the length), and the row stops at the token whose
text closes its first block (`pot.prompts.closing_fence_end`) or at an eos token.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase

from pot.prompts import closing_fence_end


class StopRule:
    """Per-row stop detection, fed each row's tokens in order. `lengths[row]`: the tokens up to
    and including the one that stopped the row (None while it runs); `at_fence[row]`: whether
    that token closed the first block (else it was an eos token). `fence=False` stops at eos
    only (plain text: math answers, summaries)."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, eos: set[int], rows: int, *, fence: bool
    ) -> None:
        self.tokenizer = tokenizer
        self.eos = eos
        self.fence = fence
        self.texts = [""] * rows
        self.counts = [0] * rows
        self.lengths: list[int | None] = [None] * rows
        self.at_fence = [False] * rows

    def add(self, row: int, token: int) -> bool:
        """Feed the row's next token; True when the row stops with it."""
        self.counts[row] += 1
        if token in self.eos:
            self.lengths[row] = self.counts[row]
            return True
        if not self.fence:
            return False
        self.texts[row] += self.tokenizer.decode([token])
        if closing_fence_end(self.texts[row]) is None:
            return False
        self.lengths[row] = self.counts[row]
        self.at_fence[row] = True
        return True

    def feed(self, row: int, tokens: Iterable[int]) -> bool:
        """Feed tokens until one stops the row; True if one did."""
        return any(self.add(row, token) for token in tokens)

    def stopped(self, row: int) -> bool:
        return self.lengths[row] is not None

    def kept(self, row: int, tokens: list[int]) -> list[int]:
        """The row's tokens up to where it stopped (all of them if it did not)."""
        length = self.lengths[row]
        return tokens if length is None else tokens[:length]
