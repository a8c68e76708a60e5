"""`Sandbox`: evaluate untrusted programs on tests with a pool of warm, isolated workers."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, Literal

from pot.sandbox import values
from pot.sandbox.compare import stdout_matches
from pot.sandbox.host_worker import DEFAULT_PYTHON, Launcher, SandboxError, Worker
from pot.sandbox.oracles import outputs_match
from pot.sandbox.results import (
    RESULT_CHARS,
    Evaluation,
    Limits,
    TestResult,
    Verdict,
    clip,
    feedback,
    reward,
)
from pot.tasks.task import Task, Test

Isolation = Literal["auto", "bwrap", "limited"]
Job = tuple[str, list[Test], str | None, str]  # program, tests, entry_point, setup_code
STDERR_IN_ERROR = 500

logger = logging.getLogger(__name__)


class IsolationWarning(RuntimeWarning):
    """Programs run with reduced isolation ("limited" mode)."""


def check_tests(tests: list[Test], entry_point: str | None) -> None:
    for index, test in enumerate(tests):
        if test.kind not in ("assert", "call", "stdio"):
            raise ValueError(f"test {index}: unknown kind {test.kind!r}; use assert, call or stdio")
        if test.kind != "call":
            continue
        if not entry_point:
            raise ValueError(f"test {index} is a 'call' test: pass entry_point=<function name>")
        try:
            arguments = values.decode(test.input)
            values.decode(test.expected)
        except ValueError as error:
            raise ValueError(
                f"test {index}: input and expected must be pot.sandbox.values encodings "
                f"(plain JSON is one): {error}"
            ) from None
        if type(arguments) is not list:
            raise ValueError(f"test {index}: input must encode a list of arguments")


def judge(test: Test, reply: dict[str, Any]) -> TestResult:
    """Turn the worker's reply into a verdict; outputs are compared here, never in the sandbox."""
    status, seconds = reply["status"], reply.get("seconds", 0.0)
    error = reply.get("error", "")
    if status == "runtime_error" and reply.get("stderr", "").strip():
        error = f"{error}\nstderr:\n{reply['stderr'][-STDERR_IN_ERROR:]}"
    if status != "completed":
        output = "" if test.kind == "call" else reply.get("stdout", "")
        return TestResult(test, Verdict(status), seconds, clip(output, RESULT_CHARS), error)
    if test.kind == "assert":
        return TestResult(test, Verdict.PASS, seconds, clip(reply.get("stdout", ""), RESULT_CHARS))
    if test.kind == "stdio":
        passed = stdout_matches(reply["stdout"], test.expected)
        verdict = Verdict.PASS if passed else Verdict.WRONG_ANSWER
        return TestResult(test, verdict, seconds, clip(reply["stdout"], RESULT_CHARS), error)
    return judge_value(test, reply.get("value"), reply.get("unsupported", ""), seconds)


def judge_value(test: Test, value: str | None, unsupported: str, seconds: float) -> TestResult:
    """A call test's verdict from the codec text of its returned value, decoded here."""
    if value is None:
        return TestResult(test, Verdict.WRONG_ANSWER, seconds, "", unsupported)
    try:
        actual = values.decode(value)
    except ValueError as error:
        message = f"the returned value could not be decoded ({error})"
        return TestResult(test, Verdict.RUNTIME_ERROR, seconds, "", clip(message, RESULT_CHARS))
    arguments = values.decode(test.input)
    passed = outputs_match(actual, values.decode(test.expected), test, arguments)
    verdict = Verdict.PASS if passed else Verdict.WRONG_ANSWER
    return TestResult(test, verdict, seconds, clip(repr(actual), RESULT_CHARS), value=value)


def fails_every_test(reply: dict[str, Any], test: Test, result: TestResult) -> bool:
    """A syntax error, or a function-test program failing before its test (crash at import)."""
    if reply["status"] == "syntax_error":
        return True
    early = reply.get("phase") in ("setup", "program")
    return test.kind != "stdio" and early and result.verdict is not Verdict.PASS


def shut_down(workers: list[Worker], launcher: Launcher, threads: ThreadPoolExecutor) -> None:
    for worker in workers:
        worker.stop()
    launcher.stop()
    threads.shutdown()


class Sandbox:
    """Runs untrusted programs on tests in warm, isolated worker processes (one per core).

    Each test runs in a fresh fork of a warm worker, so no state leaks between tests. The
    `isolation` attribute says what is in use: "bwrap" (full) or "limited" (warned about).
    """

    def __init__(
        self,
        workers: int | None = None,
        isolation: Isolation = "auto",
        limits: Limits | None = None,
        *,
        python: str = DEFAULT_PYTHON,
        bwrap: str = "bwrap",
    ):
        if isolation not in ("auto", "bwrap", "limited"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'limited', not {isolation!r}")
        interpreter = shutil.which(python)
        if interpreter is None:
            raise ValueError(f"python={python!r} is not an executable interpreter")
        self.limits = limits or Limits()
        count = workers or os.cpu_count() or 1
        launcher = Launcher()
        try:
            self.isolation, self._workers = start_workers(
                isolation, count, interpreter, bwrap, launcher
            )
        except BaseException:
            launcher.stop()
            raise
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)
        self._threads = ThreadPoolExecutor(max_workers=count, thread_name_prefix="pot-sandbox")
        self._closed = False
        self._finalizer = weakref.finalize(self, shut_down, self._workers, launcher, self._threads)

    @property
    def workers(self) -> int:
        return len(self._workers)

    def evaluate(
        self,
        program: str,
        tests: list[Test],
        *,
        entry_point: str | None = None,
        setup_code: str = "",
        stop_at_first_failure: bool = False,
    ) -> Evaluation:
        """Run `program` on `tests`. With `stop_at_first_failure`, the tests after the first
        failing one are not run and get `Verdict.NOT_RUN` (counted as failed by `reward`,
        `all_passed` and `group_passed`). No tests give reward 0 and verdict NO_TESTS."""
        check_tests(tests, entry_point)
        return self._evaluate(program, tests, entry_point, setup_code, stop_at_first_failure)

    def evaluate_many(
        self, jobs: list[Job], *, stop_at_first_failure: bool = False
    ) -> list[Evaluation]:
        """Evaluate (program, tests, entry_point, setup_code) jobs concurrently, in order."""
        for _, tests, entry_point, _ in jobs:
            check_tests(tests, entry_point)
        stop = stop_at_first_failure
        return list(self._threads.map(lambda job: self._evaluate(*job, stop), jobs))

    def evaluate_task(
        self, task: Task, program: str, split: Literal["public", "hidden"] = "public"
    ) -> Evaluation:
        """Public: every public test (the reward is the fraction passed; none give reward 0).
        Hidden: stops at the first failing test, which is the verdict."""
        if split not in ("public", "hidden"):
            raise ValueError(f"split must be 'public' or 'hidden', not {split!r}")
        if split == "hidden" and not task.hidden_tests:
            raise ValueError(f"task {task.id!r} has no hidden tests to judge a program on")
        tests = task.public_tests if split == "public" else task.hidden_tests
        return self.evaluate(
            program,
            tests,
            entry_point=task.entry_point,
            setup_code=task.setup_code,
            stop_at_first_failure=split == "hidden",
        )

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _evaluate(
        self,
        program: str,
        tests: list[Test],
        entry_point: str | None,
        setup_code: str,
        stop_at_first_failure: bool = False,
    ) -> Evaluation:
        if self._closed:
            raise SandboxError("the sandbox is closed; create a new Sandbox")
        worker = self._idle.get()
        start = time.monotonic()
        try:
            results = self._run_tests(
                worker, program, tests, entry_point, setup_code, stop_at_first_failure
            )
        finally:
            self._idle.put(worker)
        return Evaluation(
            results=results,
            reward=reward(results),
            feedback=feedback(results),
            isolation=self.isolation,
            seconds=time.monotonic() - start,
        )

    def _run_tests(
        self,
        worker: Worker,
        program: str,
        tests: list[Test],
        entry_point: str | None,
        setup_code: str,
        stop_at_first_failure: bool,
    ) -> list[TestResult]:
        results: list[TestResult] = []
        shared_failure: TestResult | None = None
        limits = asdict(self.limits)
        for test in tests:
            if stop_at_first_failure and results and results[-1].verdict is not Verdict.PASS:
                results.append(TestResult(test, Verdict.NOT_RUN, 0.0))
                continue
            if shared_failure is not None and (
                shared_failure.verdict is Verdict.SYNTAX_ERROR or test.kind != "stdio"
            ):
                verdict, error = shared_failure.verdict, shared_failure.error
                results.append(TestResult(test, verdict, 0.0, "", error))
                continue
            request = {
                "program": program,
                "setup": setup_code,
                "kind": test.kind,
                "entry_point": entry_point,
                "source": test.source,
                "input": test.input,
                **limits,
            }
            reply = worker.run(request, self.limits.timeout_s)
            result = judge(test, reply)
            results.append(result)
            if fails_every_test(reply, test, result):
                shared_failure = result
        return results


def start_workers(
    isolation: Isolation, count: int, python: str, bwrap: str, launcher: Launcher
) -> tuple[str, list[Worker]]:
    if isolation != "limited":
        try:
            return "bwrap", launch(count, "bwrap", python, bwrap, launcher)
        except SandboxError as error:
            if isolation == "bwrap":
                raise
            reason = str(error)
    else:
        reason = "isolation='limited' was requested"
    message = (
        f"sandbox in LIMITED isolation ({reason}): programs run as subprocesses with rlimits"
        f"{' as user nobody' if os.geteuid() == 0 else ''}, but without namespaces or a seccomp "
        "filter, and can see the host's file system and network. For full isolation install "
        "bubblewrap (Debian: apt-get install bubblewrap) where unprivileged user namespaces are "
        "allowed."
    )
    warnings.warn(message, IsolationWarning, stacklevel=3)
    logger.warning(message)
    return "limited", launch(count, "limited", python, bwrap, launcher)


def launch(count: int, isolation: str, python: str, bwrap: str, launcher: Launcher) -> list[Worker]:
    if isolation == "bwrap" and shutil.which(bwrap) is None:
        raise SandboxError(f"bubblewrap not found ({bwrap!r} is not on PATH)")
    workers = [Worker(isolation, python, bwrap, launcher) for _ in range(count)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
    except SandboxError:
        for worker in workers:
            worker.stop()
        raise
    return workers
