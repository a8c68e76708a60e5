"""Benchmarks: the resumable runner, Ray scale-out, reports with plots, and the tree viewer.

spec = BenchSpec(tasks="mbpp:validation", methods=["best-of-n", "pot"], limit=40)
run_bench(Path("runs/demo"), spec, load_tasks(spec.tasks, selection=spec.selection()),
          SerialExecutor(ModelPolicy("default")))
"""

from pot.bench.distributed import RayExecutor
from pot.bench.runner import BenchError, BenchSpec, RunFolder, run_bench, split_overrides
from pot.bench.worker import BenchWorker, Job, ModelPolicy, SandboxSettings, SerialExecutor

__all__ = [
    "BenchError",
    "BenchSpec",
    "BenchWorker",
    "Job",
    "ModelPolicy",
    "RayExecutor",
    "RunFolder",
    "SandboxSettings",
    "SerialExecutor",
    "run_bench",
    "split_overrides",
]
