"""Host side of one warm worker: how it is isolated, started, talked to and restarted.

The worker is the in-sandbox judge (`in_sandbox_judge.py`), which starts the in-sandbox program
server (`in_sandbox_program.py`) next to it.

"bwrap" isolation: the worker runs as an unprivileged user inside bubblewrap (all namespaces
unshared, no network, read-only root, /usr and /dev, private tmpfs /tmp and /dev/shm emptied
after every run, empty environment) under a seccomp filter. "limited" isolation: the same
worker as a plain subprocess; each run still gets the rlimits and, when the host is root, runs
as `nobody`, but there are no namespaces, no seccomp filter, and the host's file system
(its /tmp and /dev/shm included) and network are visible.

Under bwrap the judge worker is PID 1 of its PID namespace (`--as-pid-1`): programs cannot
signal it, and every process left behind once the program server is gone is re-parented to it
and killed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import pwd
import queue
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

DEFAULT_PYTHON = "/usr/bin/python3"  # the system interpreter: standard library only
PYTHON_FLAGS = ("-S", "-s", "-B", "-P")  # no site-packages, no user site, no .pyc, no cwd import
STARTUP_TIMEOUT_S = 30.0
WATCHDOG_MARGIN_S = 5.0  # the worker stops a test itself; the host waits this much longer
STOP_TIMEOUT_S = 1.0  # for an idle worker to exit on end of input
TMPFS_BYTES = 64 << 20
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
BLOCKED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount", "umount2",
    "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
    "kexec_load", "kexec_file_load", "reboot", "perf_event_open", "userfaultfd",
    "init_module", "finit_module", "delete_module", "swapon", "swapoff", "acct", "quotactl",
    "name_to_handle_at", "open_by_handle_at", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "lookup_dcookie", "syslog", "settimeofday", "clock_settime",
    "adjtimex", "clock_adjtime", "personality", "uselib", "vhangup",
    # System V IPC objects and POSIX message queues outlive the process: no state across runs.
    "shmget", "msgget", "semget", "mq_open",
)  # fmt: skip
SCRATCH = ["/tmp", "/dev/shm"]  # the only writable paths under bwrap, emptied after each run


def in_sandbox_source(side: str) -> str:
    """An in-sandbox script with what it embeds: it imports nothing from `pot`."""
    names = ("values.py", "in_sandbox_common.py", f"in_sandbox_{side}.py")
    return "\n".join(Path(__file__).with_name(name).read_text() for name in names)


JUDGE_SOURCE = in_sandbox_source("judge")
PROGRAM_SOURCE = in_sandbox_source("program")


def judge_arguments(python: str, user: list[int] | None, scratch: list[str]) -> list[str]:
    """`python -c <judge> <config>`: the config names the program server's command."""
    server = [python, *PYTHON_FLAGS, "-c", PROGRAM_SOURCE]
    config = json.dumps({"server": server, "user": user, "scratch": scratch})
    return [python, *PYTHON_FLAGS, "-c", JUDGE_SOURCE, config]


class SandboxError(RuntimeError):
    """The sandbox could not start or use its worker processes."""


@functools.cache
def seccomp_program() -> bytes:
    """Compiled BPF that makes the blocked system calls fail with EPERM (for bwrap --seccomp)."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as error:  # RuntimeError: libseccomp.so.2 not found
        raise SandboxError(f"no seccomp filter ({error}); apt-get install libseccomp2") from None
    syscall_filter = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in BLOCKED_SYSCALLS:
        if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) >= 0:
            syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    with os.fdopen(os.memfd_create("seccomp"), "w+b") as bpf:
        syscall_filter.export_bpf(bpf)
        bpf.seek(0)
        return bpf.read()


def seccomp_memfd() -> int:
    """A file descriptor holding the compiled filter, for one `bwrap --seccomp FD`."""
    fd = os.memfd_create("seccomp")
    os.write(fd, seccomp_program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def sandbox_user() -> tuple[int, int] | None:
    """(uid, gid) of `nobody`, to drop to before starting a worker; None unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def root_links() -> list[str]:
    """Recreate /bin, /lib, ... as on the host (symlinks into /usr on merged-/usr systems)."""
    arguments = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        path = Path("/", name)
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            arguments += ["--ro-bind", str(path), str(path)]
    return arguments


def bwrap_command(bwrap: str, python: str, seccomp_fd: int, command: list[str]) -> list[str]:
    """`bwrap ... command` with all namespaces unshared and the seccomp filter on fd."""
    interpreter = Path(os.path.realpath(python))
    prefix = str(interpreter.parents[1])  # e.g. /opt/python3.11 for /opt/python3.11/bin/python3
    install = [] if interpreter.is_relative_to("/usr") else ["--ro-bind", prefix, prefix]
    environment = [item for key, value in ENVIRONMENT.items() for item in ("--setenv", key, value)]
    return [
        bwrap,
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--as-pid-1",
        "--new-session", "--clearenv", *environment, "--setenv", "HOME", "/tmp",
        "--ro-bind", "/usr", "/usr", *root_links(), *install,
        "--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm",
        "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--chdir", "/tmp",
        "--remount-ro", "/dev", "--remount-ro", "/",
        "--seccomp", str(seccomp_fd),
        *command,
    ]  # fmt: skip


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except FileNotFoundError:
        return []


class WorkerLost(Exception):
    """The worker died (EOF) or stopped answering (time-out); it has to be restarted."""

    def __init__(self, hung: bool):
        super().__init__("hung" if hung else "died")
        self.hung = hung

    def reply(self) -> dict[str, Any]:
        if self.hung:
            return {"status": "time_limit", "error": "the sandbox worker stopped answering"}
        error = "the sandbox worker died during this test (did the program kill its parent?)"
        return {"status": "runtime_error", "error": error}


class Launcher:
    """One long-lived daemon thread that starts every worker process.

    bwrap --die-with-parent kills the sandbox when the *thread* that started it exits, so a
    worker restarted from a short-lived thread (a pool thread, a caller's thread) would die
    with it.
    """

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self.requests = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self.serve, name="pot-sandbox-launcher", daemon=True).start()

    def serve(self) -> None:
        while (request := self.requests.get()) is not None:
            function, future = request
            try:
                future.set_result(function())
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        future: Future[Any] = Future()
        with self.lock:
            if self.stopped:
                raise SandboxError("the sandbox is closed; create a new Sandbox")
            self.requests.put((functools.partial(function, *args, **kwargs), future))
        return future.result()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.requests.put(None)


class Worker:
    """One warm in-sandbox judge worker, restarted whenever it dies or hangs."""

    def __init__(self, isolation: str, python: str, bwrap: str, launcher: Launcher):
        self.isolation, self.python, self.bwrap = isolation, python, bwrap
        self.launcher = launcher
        self.user = sandbox_user()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.scratch: str | None = None
        self.pending = bytearray()
        self.started = 0.0

    def start(self) -> None:
        """Launch the process (returns at once; `wait_ready` waits for its greeting)."""
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        ids: dict[str, Any] = {}
        if self.user is not None and self.isolation == "bwrap":
            ids = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        seccomp_fd = -1
        if self.isolation == "bwrap":
            seccomp_fd = seccomp_memfd()
            arguments = judge_arguments(self.python, None, SCRATCH)
            command = bwrap_command(self.bwrap, self.python, seccomp_fd, arguments)
            cwd, environment = "/", {}
        else:
            self.scratch = tempfile.mkdtemp(prefix="pot-sandbox-")
            if self.user is not None:
                os.chown(self.scratch, *self.user)
            # The worker and the program server stay root so that their children, which switch
            # to `nobody` first, can neither signal them nor read root-only files.
            user = list(self.user) if self.user is not None else None
            command = judge_arguments(self.python, user, [self.scratch])
            cwd, environment = self.scratch, ENVIRONMENT | {"HOME": self.scratch}
        try:
            # Started from the launcher's long-lived thread: bwrap --die-with-parent kills the
            # sandbox as soon as the *thread* that started it exits (e.g. a pool thread).
            self.process = self.launcher.call(
                subprocess.Popen,
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                bufsize=0,
                cwd=cwd,
                env=environment,
                start_new_session=True,
                pass_fds=(seccomp_fd,) if seccomp_fd >= 0 else (),
                **ids,
            )
        except OSError as error:
            raise SandboxError(f"cannot start {command[0]!r}: {error}") from error
        finally:
            if seccomp_fd >= 0:
                os.close(seccomp_fd)
        assert self.process.stdin is not None
        os.set_blocking(self.process.stdin.fileno(), False)
        self.pending = bytearray()
        self.started = time.monotonic()

    def wait_ready(self) -> None:
        try:
            self.receive(self.started + STARTUP_TIMEOUT_S)
        except WorkerLost as lost:
            message = self.stderr().strip() or str(lost)
            self.stop()
            raise SandboxError(f"the {self.isolation} worker did not start: {message}") from None

    def restart(self) -> None:
        self.stop()
        self.start()
        self.wait_ready()

    def run(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and return the worker's reply, or a failure reply after a restart."""
        if self.died_while_idle():
            self.restart()
        deadline = time.monotonic() + timeout_s + WATCHDOG_MARGIN_S
        try:
            self.send(request, deadline)
            return self.receive(deadline)
        except WorkerLost as lost:
            self.restart()
            return lost.reply() | {"seconds": timeout_s if lost.hung else 0.0}

    def died_while_idle(self) -> bool:
        """An idle worker never writes, so a readable stdout means end of file: it is gone."""
        assert self.process is not None and self.process.stdout is not None
        return bool(select.select([self.process.stdout.fileno()], [], [], 0)[0])

    def send(self, request: dict[str, Any], deadline: float) -> None:
        assert self.process is not None and self.process.stdin is not None
        fd = self.process.stdin.fileno()
        data = memoryview((json.dumps(request) + "\n").encode())
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                raise WorkerLost(hung=True)
            try:
                data = data[os.write(fd, data) :]
            except BrokenPipeError:
                raise WorkerLost(hung=False) from None

    def receive(self, deadline: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while (end := self.pending.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise WorkerLost(hung=True)
            data = os.read(fd, 1 << 16)
            if not data:
                raise WorkerLost(hung=False)
            self.pending += data
        line = bytes(self.pending[:end])
        del self.pending[: end + 1]
        return json.loads(line)

    def stderr(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read()[-2000:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the worker. For bwrap, end the sandbox (the outer bwrap's child) first and let
        the outer bwrap reap it: killing the outer one first would leave an orphaned zombie."""
        assert self.process is not None
        if self.isolation == "bwrap":
            for pid in child_pids(self.process.pid):
                os.kill(pid, signal.SIGKILL)
            try:
                self.process.wait(timeout=2.0)
                return
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Let an idle worker exit on end of input (it has no children then); else kill it."""
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                self.process.wait()
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
