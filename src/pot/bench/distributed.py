"""Scale-out on Ray: one actor per GPU (or per CPU worker), each owning a policy and a sandbox.

The driver (`run_bench`) gives each idle actor the next job and appends each record to the
run's results.jsonl as it arrives, so resuming works exactly as for a serial run. An actor that
dies (a crash, the OOM killer, a lost node) is replaced and its job retried once, then recorded
as errored; a job past the per-job limit has its actor killed and replaced, and is recorded as
errored. A job that raises is recorded as errored by the actor itself (BenchWorker.run).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pot.bench.worker import (
    ATTEMPTS,
    BenchWorker,
    Job,
    SandboxSettings,
    died_message,
    error_record,
    hung_message,
)


class RayExecutor:
    """Runs jobs on `workers` Ray actors: on the cluster at `address`, or on a local Ray
    started here (or the one already initialised in this process, e.g. by a test).

    Without `workers`, there is one actor per GPU of the cluster, or else one per
    `cpus_per_worker` CPUs. Each actor's sandbox has `cpus_per_worker` warm workers.
    """

    def __init__(
        self,
        policy_factory: Callable[[], Any],
        *,
        workers: int | None = None,
        address: str | None = None,
        cpus_per_worker: int = 1,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.policy_factory = policy_factory
        self.workers, self.address, self.cpus_per_worker = workers, address, cpus_per_worker

    @contextmanager
    def open(self, sandbox: SandboxSettings | None, job_timeout: float | None) -> Iterator[Any]:
        import ray

        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(address=self.address, include_dashboard=False)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = self.workers or gpus or int(ray.cluster_resources()["CPU"]) // self.cpus_per_worker
        self.actor_class = ray.remote(BenchWorker).options(
            num_cpus=self.cpus_per_worker, num_gpus=1 if gpus else 0
        )
        self.sandbox, self.job_timeout = sandbox, job_timeout
        self.actors = [self.new_actor(i) for i in range(max(count, 1))]
        try:
            yield self
        finally:
            closing = [actor.close.remote() for actor in self.actors]
            ray.wait(closing, num_returns=len(closing), timeout=30)  # a dead actor just fails
            for actor in self.actors:
                ray.kill(actor)
            if started_ray:
                ray.shutdown()

    def new_actor(self, index: int) -> Any:
        return self.actor_class.remote(
            self.policy_factory, self.sandbox, f"ray-{index}", self.cpus_per_worker
        )

    def replace_actor(self, index: int) -> None:
        import ray

        ray.kill(self.actors[index], no_restart=True)
        self.actors[index] = self.new_actor(index)

    def environment(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([actor.environment.remote() for actor in self.actors])

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        import ray
        from ray.exceptions import RayError

        queue, idle = deque(jobs), list(range(len(self.actors)))
        running: dict[Any, tuple[int, Job, float]] = {}  # reference -> (actor, job, started)
        attempts: dict[Any, int] = {}
        while queue or running:
            while queue and idle:
                index, job = idle.pop(0), queue.popleft()
                attempts[job.key] = attempts.get(job.key, 0) + 1
                running[self.actors[index].run.remote(job)] = (index, job, time.monotonic())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=self.wait_s(running))
            if not ready:
                for reference in self.overdue(running):
                    index, job, _ = running.pop(reference)
                    self.replace_actor(index)
                    idle.append(index)
                    yield error_record(
                        job, f"ray-{index}", "JobTimeout", hung_message(self.job_timeout or 0), ""
                    )
                continue
            index, job, _ = running.pop(ready[0])
            idle.append(index)
            try:
                record = ray.get(ready[0])
            except RayError as error:
                self.replace_actor(index)
                if attempts[job.key] < ATTEMPTS:
                    queue.appendleft(job)
                    continue
                how = type(error).__name__
                record = error_record(job, f"ray-{index}", "WorkerDied", died_message(how), "")
            yield record

    def wait_s(self, running: dict[Any, tuple[int, Job, float]]) -> float | None:
        """Until the oldest running job reaches the per-job limit (None: no limit)."""
        if self.job_timeout is None:
            return None
        oldest = min(started for _, _, started in running.values())
        return max(0.0, oldest + self.job_timeout - time.monotonic())

    def overdue(self, running: dict[Any, tuple[int, Job, float]]) -> list[Any]:
        now = time.monotonic()
        limit = self.job_timeout or float("inf")
        return [ref for ref, (_, _, started) in running.items() if now - started >= limit]
