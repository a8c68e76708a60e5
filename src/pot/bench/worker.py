"""What runs a benchmark's jobs, and how a job that raises, hangs or kills its worker is recorded.

A `BenchWorker` owns one policy and one sandbox and solves jobs one after another. An exception
in a job (a prompt too long, a sandbox error, out of memory) becomes an error record, never the
end of the run. The serial executor runs its worker in a child process, not in the driver: a
job that hangs inside a C call (llama.cpp decoding, a stuck pipe) cannot be stopped from a
thread or a signal handler, but a process can be killed. The watchdog in the driver kills the
child when a job passes its wall-clock limit and starts a fresh one (one model load, paid only
then), and a child that dies (a segfault, the OOM killer) is replaced and its job retried once.
One long-lived child, not one per job: the model loads once per run, not once per job.
Children are forked from a forkserver that has imported torch but never run it, so that no
thread pool of the driver is inherited (fork after torch has run threads can deadlock).
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import socket
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pot.budget import Budget
from pot.methods import solve
from pot.methods.math_methods import solve_math
from pot.sandbox import Limits, Sandbox

JobKey = tuple[str, str, int]  # (task_id, method, seed)
ISOLATIONS = ("auto", "bwrap", "limited")
ATTEMPTS = 2  # a job whose worker dies is retried once on a fresh worker


@dataclass(frozen=True)
class SandboxSettings:
    """The sandbox every worker of a run opens: part of the run's identity."""

    isolation: str = "auto"
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_overrides(cls, overrides: dict[str, str]) -> SandboxSettings:
        """From `sandbox.KEY=VALUE` settings: isolation, or a field of `Limits`."""
        limits: dict[str, Any] = {}
        isolation = "auto"
        kinds = {f.name: type(getattr(Limits(), f.name)) for f in fields(Limits)}
        for key, value in overrides.items():
            if key == "isolation":
                if value not in ISOLATIONS:
                    raise ValueError(
                        f"sandbox.isolation takes {', '.join(ISOLATIONS)}, not {value!r}"
                    )
                isolation = value
            elif key in kinds:
                try:
                    limits[key] = kinds[key](value)
                except ValueError:
                    raise ValueError(f"sandbox.{key} takes a number, not {value!r}") from None
            else:
                raise ValueError(f"unknown sandbox option {key!r}")
        return cls(isolation, Limits(**limits))

    def to_dict(self) -> dict[str, Any]:
        return {"isolation": self.isolation, "limits": asdict(self.limits)}

    def open(self, workers: int | None = None) -> Sandbox:
        return Sandbox(workers=workers, isolation=self.isolation, limits=self.limits)


@dataclass(frozen=True)
class Job:
    """One unit of work, self-contained so that it can be shipped to another process."""

    task: Any  # a Task (domain "code") or a MathTask (domain "math")
    method: str
    seed: int
    config: Any
    budget: Budget
    oracle: bool
    run_id: str
    domain: str = "code"

    @property
    def key(self) -> JobKey:
        return (self.task.id, self.method, self.seed)


@dataclass(frozen=True)
class ModelPolicy:
    """A picklable policy factory: loads `model` where it is called, with `engine` resolved
    there (pot.policy.engines: a Ray worker with a GPU uses it, else the CPU) and the engine
    options (`{"llamacpp.threads": "2"}`)."""

    model: str = "default"
    engine: str = "auto"
    options: dict[str, str] = field(default_factory=dict)

    def __call__(self) -> Any:
        from pot.policy.engines import load_policy

        return load_policy(self.model, self.engine, options=self.options)


def error_record(job: Job, worker: str, kind: str, message: str, details: str) -> dict[str, Any]:
    """The record of a job that ended without a result. `details` (a traceback) travels with
    the record to the driver, which moves it to a side file (RunFolder.append)."""
    lines = message.strip().splitlines()
    return {
        "task_id": job.task.id,
        "method": job.method,
        "seed": job.seed,
        "run_id": job.run_id,
        "worker": worker,
        "error": {"type": kind, "message": lines[0] if lines else kind, "traceback": details},
    }


class BenchWorker:
    """Owns one policy and one sandbox (code runs only) and solves jobs one after another."""

    def __init__(
        self,
        policy_factory: Callable[[], Any],
        sandbox: SandboxSettings | None,
        name: str = "local",
        sandbox_workers: int | None = None,
    ) -> None:
        self.name, self.settings, self.sandbox_workers = name, sandbox, sandbox_workers
        self.policy = policy_factory()
        self.sandbox = sandbox.open(sandbox_workers) if sandbox else None

    def environment(self) -> dict[str, Any]:
        return {
            "worker": self.name,
            "host": socket.gethostname(),
            "isolation": self.sandbox.isolation if self.sandbox else None,
            "device": str(self.policy.learner.device),
            "engine": self.policy.engine.name,
        }

    def run(self, job: Job) -> dict[str, Any]:
        try:
            result = self.solve(job)
        except Exception as error:
            self.renew_sandbox()  # a job may fail because the sandbox did: start the next clean
            return error_record(
                job, self.name, type(error).__name__, str(error), traceback.format_exc()
            )
        return {**result.to_dict(), "run_id": job.run_id, "worker": self.name}

    def solve(self, job: Job) -> Any:
        if job.domain == "math":
            return solve_math(
                job.task, self.policy, job.method, job.config, seed=job.seed, budget=job.budget
            )
        return solve(
            job.task,
            self.policy,
            self.sandbox,
            job.method,
            config=job.config,
            budget=job.budget,
            seed=job.seed,
            oracle=job.oracle,
        )

    def renew_sandbox(self) -> None:
        if self.settings is not None and self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = self.settings.open(self.sandbox_workers)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()


class WorkerDied(RuntimeError):
    pass


class JobHung(RuntimeError):
    pass


def hung_message(job_timeout: float) -> str:
    return f"no result after the per-job limit of {job_timeout:g} s: the job was ended"


def died_message(how: str) -> str:
    return f"the worker running the job died ({how}), on each of {ATTEMPTS} attempts"


def picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def serve(
    connection: Any, policy_factory: Callable[[], Any], sandbox: SandboxSettings | None
) -> None:
    """The child's loop: build the worker, then answer each job with its record."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:
        worker = BenchWorker(policy_factory, sandbox)
    except BaseException as error:
        connection.send(("failed", picklable(error)))
        return
    connection.send(("ready", worker.environment()))
    try:
        while (job := connection.recv()) is not None:
            connection.send(worker.run(job))
    except (EOFError, BrokenPipeError):
        pass  # the driver is gone
    finally:
        worker.close()


def worker_context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pot.bench.worker"])
    return context


class WorkerProcess:
    """A BenchWorker in a child process, with a watchdog on each job."""

    def __init__(self, policy_factory: Callable[[], Any], sandbox: SandboxSettings | None) -> None:
        self.policy_factory, self.sandbox = policy_factory, sandbox
        self.start()

    def start(self) -> None:
        context = worker_context()
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child, self.policy_factory, self.sandbox), name="pot-bench-worker"
        )
        self.process.start()
        child.close()
        try:
            status, payload = self.connection.recv()
        except EOFError:
            raise WorkerDied(f"the bench worker died while starting ({self.exit_text()})") from None
        if status == "failed":
            self.process.join()
            raise payload
        self.environment: dict[str, Any] = payload

    def call(self, job: Job, timeout: float | None) -> dict[str, Any]:
        """The job's record; JobHung past `timeout`, WorkerDied if the child died."""
        try:
            self.connection.send(job)
            if not self.connection.poll(timeout):
                raise JobHung(hung_message(timeout or 0))
            return self.connection.recv()
        except (EOFError, OSError):
            raise WorkerDied(self.exit_text()) from None

    def exit_text(self) -> str:
        self.process.join(timeout=10)
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def restart(self) -> None:
        self.kill()
        self.start()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()

    def stop(self) -> None:
        with suppress(OSError):  # a child that died already
            self.connection.send(None)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.kill()
        self.connection.close()


class SerialExecutor:
    """One worker, in a child process (see the module's docstring); jobs in order."""

    def __init__(self, policy_factory: Callable[[], Any]) -> None:
        self.policy_factory = policy_factory

    @contextmanager
    def open(self, sandbox: SandboxSettings | None, job_timeout: float | None) -> Iterator[Any]:
        self.worker, self.job_timeout = WorkerProcess(self.policy_factory, sandbox), job_timeout
        try:
            yield self
        except BaseException:
            self.worker.kill()  # e.g. Ctrl-C: do not wait for the job in flight
            raise
        self.worker.stop()

    def environment(self) -> list[dict[str, Any]]:
        return [self.worker.environment]

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield self.run_one(job)

    def run_one(self, job: Job) -> dict[str, Any]:
        how = ""
        for _ in range(ATTEMPTS):
            try:
                return self.worker.call(job, self.job_timeout)
            except JobHung as hung:
                self.worker.restart()
                return error_record(job, "local", "JobTimeout", str(hung), "")
            except WorkerDied as died:
                how = str(died)
                self.worker.restart()
        return error_record(job, "local", "WorkerDied", died_message(how), "")
