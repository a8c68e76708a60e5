"""Rollouts from llama.cpp on the GGUF base model, with the learner's adapter hot-swapped in.

The LoRA adapter lives and trains in the learner (transformers + PEFT); llama.cpp only
samples. Before a generation whose adapter weights differ from the ones llama.cpp holds (after
a GRPO update, reset, restore or new adapter), the adapter is written as a GGUF LoRA file and
swapped into the running llama.cpp context; the base model stays loaded.

Per-token log-probs of the returned completions (the search priors) come by default from
llama.cpp's own logits at each sampled token, with the live adapter: they are the distribution
that sampled the tokens (SPEC section 2) and cost nothing. `logprobs_from="transformers"`
leaves them to the learner instead (one batched no-grad forward). GRPO never uses them: it
recomputes pi_old in the learner. llama.cpp runs the quantized weights (and quantizes
activations), so the two differ a little; benchmarks/logprob_agreement.py measures by how much.
"""

from __future__ import annotations

import ctypes
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pot.policy.fence import StopRule
from pot.policy.gguf_lora import GgufBase, write_gguf_lora
from pot.policy.learner import AdapterState, Learner
from pot.policy.rollout import Rollouts, Sampling

LOGPROB_SOURCES = ("llamacpp", "transformers")  # who scores the sampled tokens for the priors
Picker = Callable[[list[int], np.ndarray], list[int]]  # rows, their logits -> their tokens


class LlamaCppDecoder:
    """A llama.cpp model and context that decode n sequences after one shared prompt.

    The KV cache is unified: the prompt is evaluated once into sequence 0 and its cells are
    shared with sequences 1..n-1 (llama_memory_seq_cp tags them, nothing is copied). The next
    call keeps the cells of the prefix its prompt shares with this one (self-repair and tree
    search prompts extend earlier ones), as long as the adapter has not changed.
    """

    def __init__(self, path: Path, *, threads: int | None = None, batch: int = 512) -> None:
        import llama_cpp
        from llama_cpp import _internals

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load log
        self._llama = llama_cpp
        self._internals = _internals
        self.path = path
        self.threads = threads or torch.get_num_threads()  # honours OMP_NUM_THREADS (Ray)
        self.batch_size = batch
        self.model = _internals.LlamaModel(
            path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
        )
        self.n_vocab = self.model.n_vocab()
        self.context = None
        self.capacity = (0, 0)  # (KV cells, sequences) of the current context
        self.adapter = None  # the llama_adapter_lora pointer set on the context
        self.batch = _internals.LlamaBatch(n_tokens=batch, embd=0, n_seq_max=1, verbose=False)
        self.decoded_tokens = 0  # tokens sent through the model, prompts included
        self.cached: list[int] = []  # the prompt whose KV cells sequence 0 holds

    def set_adapter(self, path: Path | None) -> None:
        """Load a GGUF LoRA file (None: no adapter) and make it the context's only adapter."""
        adapter = None
        if path is not None:
            adapter = self._llama.llama_adapter_lora_init(self.model.model, str(path).encode())
            if not adapter:
                raise RuntimeError(f"llama.cpp could not load the LoRA adapter {path}")
        old, self.adapter = self.adapter, adapter
        self.cached = []  # cells computed with the old adapter
        if self.context is not None:
            self._apply_adapter()
        if old:
            self._llama.llama_adapter_lora_free(old)

    def generate(
        self,
        prompt_ids: list[int],
        n: int,
        max_new_tokens: int,
        pick: Picker,
        stopped: Callable[[int, int], bool],
        *,
        with_logprobs: bool = True,
    ) -> tuple[list[list[int]], list[list[float]]]:
        """n continuations of one prompt, and each token's log-prob under llama.cpp's logits
        (untempered, before any penalty; empty rows without `with_logprobs`);
        `stopped(row, token)` ends a row after that token."""
        self._ensure_context(len(prompt_ids) + n * max_new_tokens, n)
        self._decode_prompt(prompt_ids, self._keep_shared_prefix(prompt_ids))
        self.cached = list(prompt_ids)
        logits = np.repeat(self._logits(self.batch.n_tokens() - 1)[None], n, axis=0)
        for row in range(1, n):
            self.context.kv_cache_seq_cp(0, row, -1, -1)
        outputs: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        active = list(range(n))
        for step in range(max_new_tokens):
            for i, (row, token) in enumerate(zip(active, pick(active, logits), strict=True)):
                outputs[row].append(token)
                if with_logprobs:
                    logprobs[row].append(_logprob(logits[i], token))
            active = [row for row in active if not stopped(row, outputs[row][-1])]
            if not active or step == max_new_tokens - 1:
                break
            position = len(prompt_ids) + step
            tokens = [outputs[row][-1] for row in active]
            self._fill(tokens, [position] * len(active), active, [True] * len(active))
            self._decode()
            logits = np.stack([self._logits(i) for i in range(len(active))])
        return outputs, logprobs

    def _keep_shared_prefix(self, prompt_ids: list[int]) -> int:
        """Drop every cached cell but those of the prompt's prefix shared with the last prompt;
        return its length. The last prompt token is always decoded again, for its logits."""
        shared, limit = 0, min(len(self.cached), len(prompt_ids) - 1)
        while shared < limit and self.cached[shared] == prompt_ids[shared]:
            shared += 1
        self.context.kv_cache_seq_keep(0)
        if shared == 0 or not self.context.kv_cache_seq_rm(0, shared, -1):
            self.context.kv_cache_clear()
            return 0
        return shared

    def _decode_prompt(self, prompt_ids: list[int], first: int = 0) -> None:
        """The prompt from position `first` into sequence 0, in chunks of the batch size;
        logits for its last token."""
        for start in range(first, len(prompt_ids), self.batch_size):
            chunk = prompt_ids[start : start + self.batch_size]
            positions = list(range(start, start + len(chunk)))
            wanted = [position == len(prompt_ids) - 1 for position in positions]
            self._fill(chunk, positions, [0] * len(chunk), wanted)
            self._decode()

    def _fill(
        self, tokens: list[int], positions: list[int], sequences: list[int], logits: list[bool]
    ) -> None:
        raw = self.batch.batch
        raw.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            raw.token[i] = token
            raw.pos[i] = positions[i]
            raw.n_seq_id[i] = 1
            raw.seq_id[i][0] = sequences[i]
            raw.logits[i] = logits[i]

    def _decode(self) -> None:
        self.context.decode(self.batch)
        self.decoded_tokens += self.batch.n_tokens()

    def _logits(self, index: int) -> np.ndarray:
        pointer = self.context.get_logits_ith(index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def _ensure_context(self, cells: int, sequences: int) -> None:
        """A context with room for `cells` KV cells and `sequences` sequences (grown, never
        shrunk; a new context reuses the loaded model and gets the adapter set again)."""
        have_cells, have_sequences = self.capacity
        if self.context is not None and cells <= have_cells and sequences <= have_sequences:
            return
        wanted = (max(cells, have_cells) + 1023) // 1024 * 1024
        wanted_sequences = max(sequences, have_sequences, 1)
        limit = min(self.batch_size, self._llama.llama_max_parallel_sequences())
        if wanted_sequences > limit:
            raise ValueError(f"llama.cpp decodes at most {limit} sequences, not {sequences}")
        params = self._llama.llama_context_default_params()
        params.n_ctx = wanted
        params.n_batch = params.n_ubatch = self.batch_size
        params.n_seq_max = wanted_sequences
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = self.threads
        if self.context is not None:
            self.context.close()
        self.context = self._internals.LlamaContext(model=self.model, params=params, verbose=False)
        self.cached = []
        self.capacity = (wanted, wanted_sequences)
        self._apply_adapter()

    def _apply_adapter(self) -> None:
        lora = self._llama
        if self.adapter:
            adapters = (lora.llama_adapter_lora_p_ctypes * 1)(self.adapter)
            scales = (ctypes.c_float * 1)(1.0)
            failed = lora.llama_set_adapters_lora(self.context.ctx, adapters, 1, scales)
        else:
            failed = lora.llama_set_adapters_lora(self.context.ctx, None, 0, None)
        if failed:
            raise RuntimeError("llama.cpp could not set the LoRA adapter on its context")


@dataclass
class LlamaCppConfig:
    threads: int = 0  # llama.cpp decoding threads; 0: torch's thread count (OMP_NUM_THREADS, Ray)
    logprobs_from: str = "llamacpp"  # who scores the sampled tokens for the priors

    def check(self) -> None:
        """ValueError, one line, for a value the engine cannot take."""
        if self.logprobs_from not in LOGPROB_SOURCES:
            raise ValueError(
                f"unknown log-prob source {self.logprobs_from!r} (llamacpp.logprobs_from): "
                f"choose one of {', '.join(LOGPROB_SOURCES)}"
            )
        if self.threads < 0:
            raise ValueError(
                f"llamacpp.threads must be 0 (torch's thread count) or more, not {self.threads}"
            )


class LlamaCppEngine:
    """Rollouts in llama.cpp with the learner's adapter hot-swapped in.

    `swap_seconds` records each adapter swap (GGUF conversion + load) for the cost figures.
    """

    name = "llamacpp"

    def __init__(self, gguf_file: Path, config: LlamaCppConfig | None = None) -> None:
        self.config = config or LlamaCppConfig()
        self.config.check()
        self.decoder = LlamaCppDecoder(gguf_file, threads=self.config.threads or None)
        self.gguf_base = GgufBase.read(gguf_file)
        self.swap_seconds: list[float] = []
        self._synced: AdapterState | None = None  # the adapter weights llama.cpp now holds
        self._workdir = tempfile.TemporaryDirectory(prefix="pot-lora-")

    def generate(
        self,
        learner: Learner,
        prompt_ids: list[int],
        n: int,
        max_new_tokens: int,
        sampling: Sampling | None,
        stop: StopRule,
    ) -> Rollouts:
        """n rows decoded by llama.cpp after the prompt, which is evaluated once."""
        self.sync_adapter(learner)
        sampler = Sampler(sampling)
        sampler.start(prompt_ids, n)
        own = self.config.logprobs_from == "llamacpp"
        outputs, logprobs = self.decoder.generate(
            prompt_ids, n, max_new_tokens, sampler, stop.add, with_logprobs=own
        )
        return Rollouts(token_ids=outputs, logprobs=logprobs if own else None)

    def reset(self) -> None:
        """Forget the cached prompt: a problem's samples then depend on the problem, the seed
        and the config only, not on which problem ran before."""
        self.decoder.cached = []

    def sync_adapter(self, learner: Learner) -> None:
        """Give llama.cpp the learner's adapter if its weights changed since the last swap.

        An adapter that adds nothing (every LoRA B zero, as initialised: each problem's first
        expansion) is not loaded: the logits are the base model's either way, and llama.cpp
        then skips the LoRA products.
        """
        if learner.adapter_equals(self._synced):
            return
        start = time.perf_counter()
        path = None
        if learner.has_adapter and not learner.adapter_is_identity():
            path = Path(self._workdir.name) / "adapter.gguf"
            write_gguf_lora(learner.model, self.gguf_base, path)
        self.decoder.set_adapter(path)
        self._synced = learner.adapter_state() if learner.has_adapter else None
        self.swap_seconds.append(time.perf_counter() - start)


class Sampler:
    """Picks each row's next token: argmax without `sampling` (greedy), else its seeded draw
    (pot.policy.rollout.Sampling). A repetition-penalised logit is that of a token already in
    the prompt or the row's output."""

    def __init__(self, sampling: Sampling | None = None) -> None:
        self.sampling = sampling or Sampling()  # greedy: only its penalty (none) applies
        self.rng = None if sampling is None else np.random.default_rng(sampling.seed)
        self.seen: list[set[int]] = []

    def start(self, prompt_ids: list[int], rows: int) -> None:
        self.seen = [set(prompt_ids) for _ in range(rows)]

    def __call__(self, rows: list[int], logits: np.ndarray) -> list[int]:
        tokens = [self._pick(row, scores) for row, scores in zip(rows, logits, strict=True)]
        for row, token in zip(rows, tokens, strict=True):
            self.seen[row].add(token)
        return tokens

    def _pick(self, row: int, scores: np.ndarray) -> int:
        scores = scores.astype(np.float64)
        penalty = self.sampling.repetition_penalty
        if penalty != 1.0:
            seen = np.fromiter(self.seen[row], dtype=np.int64)
            chosen = scores[seen]
            scores[seen] = np.where(chosen > 0, chosen / penalty, chosen * penalty)
        if self.rng is None:
            return int(scores.argmax())
        scaled = scores / max(self.sampling.temperature, 1e-5)
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        top_p = self.sampling.top_p
        if top_p < 1.0:
            order = np.argsort(-probs)
            keep = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1]
            return int(keep[self.rng.choice(len(keep), p=probs[keep] / probs[keep].sum())])
        return int(min(np.searchsorted(np.cumsum(probs), self.rng.random()), len(probs) - 1))


def _logprob(scores: np.ndarray, token: int) -> float:
    scores = scores.astype(np.float64)
    top = scores.max()
    return float(scores[token] - top - np.log(np.exp(scores - top).sum()))
