"""Run untrusted, model-written programs on tests: isolated, warm, and judged by the host.

with Sandbox() as sandbox:
    evaluation = sandbox.evaluate(program, tests, entry_point="solve")
    evaluation.reward, evaluation.feedback
"""

from pot.sandbox.evaluate import IsolationWarning, Sandbox
from pot.sandbox.host_worker import SandboxError
from pot.sandbox.results import Evaluation, Limits, TestResult, Verdict

__all__ = [
    "Evaluation",
    "IsolationWarning",
    "Limits",
    "Sandbox",
    "SandboxError",
    "TestResult",
    "Verdict",
]
