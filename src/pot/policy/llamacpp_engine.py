"""Rollouts from llama.cpp on the GGUF base model, with the training adapter hot-swapped in.

The LoRA adapter lives and trains in transformers + PEFT (this class *is* a
TransformersPolicy); llama.cpp only samples. Before a generation whose adapter weights differ
from the ones llama.cpp holds (after a GRPO update, reset, restore or new adapter), the adapter
is written as a GGUF LoRA file and swapped into the running llama.cpp context; the base model
stays loaded.

Per-token log-probs of the returned completions (the search priors) come by default from
llama.cpp's own logits at each sampled token, with the live adapter: they are the distribution
that sampled the tokens (SPEC section 2) and cost nothing. `logprobs_from="transformers"`
computes them in the training model instead (one batched no-grad forward). GRPO never uses
them: it recomputes pi_old in the training model. llama.cpp runs the quantized weights (and
quantizes activations), so the two differ a little; benchmarks/logprob_agreement.py measures
by how much.
"""

from __future__ import annotations

import ctypes
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pot.policy.base import Completion, Prompt
from pot.policy.fence import FenceStop
from pot.policy.gguf_lora import GgufBase, write_gguf_lora
from pot.policy.models import gguf_path, load_model
from pot.policy.transformers_policy import AdapterState, TransformersPolicy

LOGPROB_SOURCES = ("llamacpp", "transformers")  # who scores the sampled tokens for the priors
Picker = Callable[[list[int], np.ndarray], list[int]]  # rows, their logits -> their tokens


class LlamaCppEngine:
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


class LlamaCppPolicy(TransformersPolicy):
    """TransformersPolicy (training, log-probs) whose rollouts run in llama.cpp.

    `swap_seconds` records each adapter swap (GGUF conversion + load) for the cost figures.
    """

    engine_name = "llamacpp"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        gguf_file: Path,
        *,
        threads: int | None = None,
        logprobs_from: str = "llamacpp",
    ) -> None:
        super().__init__(model, tokenizer)
        if logprobs_from not in LOGPROB_SOURCES:
            raise ValueError(
                f"unknown log-prob source {logprobs_from!r}: choose one of "
                f"{', '.join(LOGPROB_SOURCES)}"
            )
        self.logprobs_from = logprobs_from
        self.engine = LlamaCppEngine(gguf_file, threads=threads)
        self.gguf_base = GgufBase.read(gguf_file)
        self.swap_seconds: list[float] = []
        self._synced: AdapterState | None = None  # the adapter weights llama.cpp now holds
        self._workdir = tempfile.TemporaryDirectory(prefix="pot-lora-")

    @classmethod
    def load(
        cls, name: str = "default", *, threads: int | None = None, logprobs_from: str = "llamacpp"
    ) -> LlamaCppPolicy:
        path = gguf_path(name)
        if path is None:
            raise ValueError(f"model {name!r} has no GGUF file for llama.cpp")
        return cls(*load_model(name), path, threads=threads, logprobs_from=logprobs_from)

    def sample(
        self,
        prompt: Prompt,
        n: int,
        *,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int = 2048,
        seed: int | None = None,
        stop_at_fence: bool = True,
        repetition_penalty: float = 1.0,
        logprobs: bool = True,
    ) -> list[Completion]:
        """n completions sampled by llama.cpp after the prompt, which is evaluated once."""
        sampler = Sampler(temperature, top_p, repetition_penalty, np.random.default_rng(seed))
        return self._rollout(prompt, n, max_new_tokens, sampler, stop_at_fence, logprobs)

    def greedy(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 2048,
        stop_at_fence: bool = True,
        logprobs: bool = True,
    ) -> Completion:
        return self._rollout(prompt, 1, max_new_tokens, Sampler(), stop_at_fence, logprobs)[0]

    def _rollout(
        self,
        prompt: Prompt,
        n: int,
        max_new_tokens: int,
        sampler: Sampler,
        stop_at_fence: bool,
        with_logprobs: bool,
    ) -> list[Completion]:
        prompt_ids = self.encode_prompt(prompt)
        room = self._room_for(len(prompt_ids), max_new_tokens)
        self.sync_adapter()
        sampler.start(prompt_ids, n)
        stop = _StopRule(self.tokenizer, self.eos_token_ids, n, stop_at_fence)
        outputs, own = self.engine.generate(prompt_ids, n, room, sampler, stop)
        if self.logprobs_from == "transformers":
            logprobs = [
                row.tolist() for row in self.rollout_logprobs(prompt_ids, outputs, with_logprobs)
            ]
        else:
            logprobs = own
        return [
            self._completion(ids, row_logprobs, stop.fence_lengths[row], len(prompt_ids))
            for row, (ids, row_logprobs) in enumerate(zip(outputs, logprobs, strict=True))
        ]

    def reset(self) -> None:
        """Also forget the cached prompt: a problem's samples then depend on the problem, the
        seed and the config only, not on which problem ran before (a warm prefix can flip a
        near-tie token, so a resumed or Ray run would otherwise differ from a serial one)."""
        super().reset()
        self.engine.cached = []

    def sync_adapter(self) -> None:
        """Give llama.cpp the training adapter if its weights changed since the last swap.

        An adapter that adds nothing (every LoRA B zero, as initialised: each problem's first
        expansion) is not loaded: the logits are the base model's either way, and llama.cpp
        then skips the LoRA products.
        """
        current = self.adapter_state() if isinstance(self.model, PeftModel) else None
        if _same_adapter(current, self._synced):
            return
        start = time.perf_counter()
        path = None
        if current is not None and not self.adapter_is_identity():
            path = Path(self._workdir.name) / "adapter.gguf"
            write_gguf_lora(self.model, self.gguf_base, path)
        self.engine.set_adapter(path)
        self._synced = current
        self.swap_seconds.append(time.perf_counter() - start)


class _StopRule:
    """Ends a row at an eos token or, with `fence`, once its text closes the first ``` block."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, eos: set[int], rows: int, fence: bool
    ) -> None:
        self.eos = eos
        self.fence = FenceStop(tokenizer, rows) if fence else None
        self.fence_lengths = self.fence.lengths if fence else [None] * rows

    def __call__(self, row: int, token: int) -> bool:
        if token in self.eos:
            return True
        return self.fence is not None and self.fence.add(row, token)


class Sampler:
    """Picks each row's next token: argmax without an rng, else a seeded draw at `temperature`
    from the nucleus of mass `top_p`. The repetition penalty is transformers': a logit of a
    token already in the prompt or the row's output is divided by it when positive, else
    multiplied."""

    def __init__(
        self,
        temperature: float = 1.0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.penalty = repetition_penalty
        self.rng = rng
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
        if self.penalty != 1.0:
            seen = np.fromiter(self.seen[row], dtype=np.int64)
            chosen = scores[seen]
            scores[seen] = np.where(chosen > 0, chosen / self.penalty, chosen * self.penalty)
        if self.rng is None:
            return int(scores.argmax())
        scaled = scores / max(self.temperature, 1e-5)
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self.top_p < 1.0:
            order = np.argsort(-probs)
            keep = order[: int(np.searchsorted(np.cumsum(probs[order]), self.top_p)) + 1]
            return int(keep[self.rng.choice(len(keep), p=probs[keep] / probs[keep].sum())])
        return int(min(np.searchsorted(np.cumsum(probs), self.rng.random()), len(probs) - 1))


def _logprob(scores: np.ndarray, token: int) -> float:
    scores = scores.astype(np.float64)
    top = scores.max()
    return float(scores[token] - top - np.log(np.exp(scores - top).sum()))


def _same_adapter(a: AdapterState | None, b: AdapterState | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
