"""A real tiny policy whose rollouts are scripted, for exact tests of the search arithmetic."""

import itertools
import os
import signal
import time

import torch

from pot.policy import Completion, Learner, LoraPolicy
from pot.policy.tiny import tiny_random_model


class ScriptedPolicy(LoraPolicy):
    """A real (tiny, random) policy whose rollouts are the scripted programs in turn, cycling.

    Log-probs, the adapter and GRPO updates are the real ones; only sampling is replaced, and
    each completion is cut to `tokens` tokens (at most max_new_tokens) to make costs exact.
    """

    def __init__(self, programs: list[str], tokens: int = 10) -> None:
        super().__init__(Learner(*tiny_random_model(seed=0)))
        self.programs, self.tokens = programs, tokens
        self.prompts: list[str] = []
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._next = itertools.cycle(self.programs)

    def _complete(self, prompt, max_new_tokens: int) -> Completion:
        self.prompts.append(prompt[-1]["content"])
        text = f"```python\n{next(self._next)}\n```"
        prompt_ids = self.encode_prompt(prompt)
        ids = self.learner.tokenizer(text, add_special_tokens=False).input_ids
        ids = (ids * self.tokens)[: min(self.tokens, max_new_tokens)]
        (logprobs,) = self.completion_logprobs(prompt_ids, [ids])
        return Completion(text, ids, logprobs.tolist(), len(prompt_ids), "stop")

    def sample(self, prompt, n, *, max_new_tokens=2048, **sampling):
        return [self._complete(prompt, max_new_tokens) for _ in range(n)]

    def greedy(self, prompt, *, max_new_tokens=2048, **decoding):
        return self._complete(prompt, max_new_tokens)


def one_thread(factory):
    """`factory()` in a process whose torch runs on one thread, as a Ray actor's does."""
    torch.set_num_threads(1)
    return factory()


class FaultyPolicy(ScriptedPolicy):
    """Scripted, but its greedy decoding (zero-shot's and `single`'s) misbehaves on the tasks
    whose prompt holds a key of `faults`: "raise" raises, "hang" sleeps for an hour, "die"
    kills its own process; "die-once:PATH" dies only while PATH does not exist (creating it),
    so that a retry on a fresh worker succeeds."""

    def __init__(self, programs: list[str], faults: dict[str, str]) -> None:
        super().__init__(programs)
        self.faults = faults

    def greedy(self, prompt, *, max_new_tokens=2048, **decoding):
        for marker, fault in self.faults.items():
            if marker in prompt[-1]["content"]:
                misbehave(fault)
        return super().greedy(prompt, max_new_tokens=max_new_tokens, **decoding)


def misbehave(fault: str) -> None:
    kind, _, path = fault.partition(":")
    if kind == "raise":
        raise RuntimeError("prompt too long: 9000 tokens, the context holds 8192")
    if kind == "hang":
        time.sleep(3600)
    if kind == "die" or (kind == "die-once" and not os.path.exists(path)):
        if path:
            open(path, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
