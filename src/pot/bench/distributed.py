"""Scale-out on Ray: one actor per GPU (or per CPU worker), each owning a policy and a sandbox.

The driver (`run_bench`) hands out jobs through a `ray.util.ActorPool` and appends each record
to the run's results.jsonl as it arrives, so resuming works exactly as for a serial run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from types import TracebackType
from typing import Any

from pot.bench.runner import BenchWorker, Job
from pot.sandbox import Sandbox


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
        sandbox_factory: Callable[[], Sandbox] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.policy_factory = policy_factory
        self.workers, self.address, self.cpus_per_worker = workers, address, cpus_per_worker
        self.sandbox_factory = sandbox_factory or partial(Sandbox, workers=cpus_per_worker)
        self.started_ray = False

    def __enter__(self) -> RayExecutor:
        import ray
        from ray.util import ActorPool

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False)
            self.started_ray = True
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = self.workers or gpus or int(ray.cluster_resources()["CPU"]) // self.cpus_per_worker
        actor = ray.remote(BenchWorker).options(
            num_cpus=self.cpus_per_worker, num_gpus=1 if gpus else 0
        )
        self.actors = [
            actor.remote(self.policy_factory, self.sandbox_factory, f"ray-{i}")
            for i in range(max(count, 1))
        ]
        self.pool = ActorPool(self.actors)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import ray

        closing = [actor.close.remote() for actor in self.actors]
        ray.wait(closing, num_returns=len(closing), timeout=30)  # an actor that died just fails
        for actor in self.actors:
            ray.kill(actor)
        if self.started_ray:
            ray.shutdown()

    def environment(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([actor.environment.remote() for actor in self.actors])

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        yield from self.pool.map_unordered(lambda actor, job: actor.run.remote(job), jobs)
