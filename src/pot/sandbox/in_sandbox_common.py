"""What both in-sandbox processes share: limits, process clean-up, error text.

Standard library only, no `pot` imports: the host runs this source after the source of
`pot.sandbox.values` and before `in_sandbox_judge.py` or `in_sandbox_program.py`.
"""

import contextlib
import ctypes
import fcntl
import linecache
import os
import resource
import signal
import socket
import traceback

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
FIELD_CHARS = 1000
SOURCES = ("<setup>", "<program>", "<test>")
INLINE_BYTES = 1 << 15  # a longer message travels in a memfd
LIBC = ctypes.CDLL(None, use_errno=True)
REMEMBERED: dict = {}  # the source last given to `remember_source` under each name


def prctl(option: int, value: int) -> None:
    LIBC.prctl(option, value, 0, 0, 0)


def clip(text: str, limit: int = FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n...\n" + text[-limit // 2 :]


def remember_source(name: str, source: str) -> None:
    """Let tracebacks show the lines of code compiled from strings."""
    if name not in linecache.cache or REMEMBERED.get(name) != source:
        REMEMBERED[name] = source
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)


def format_error(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in SOURCES]
    lines = traceback.format_list(frames[-3:]) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def set_limits(limits: dict, cpu: bool = True) -> None:
    def limit(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    limit(resource.RLIMIT_AS, limits["memory_mb"] << 20)
    if cpu:
        limit(resource.RLIMIT_CPU, int(limits["timeout_s"]) + 1)
    limit(resource.RLIMIT_FSIZE, limits["max_file_bytes"])
    limit(resource.RLIMIT_NOFILE, limits["max_open_files"])
    limit(resource.RLIMIT_NPROC, limits["max_processes"])
    limit(resource.RLIMIT_CORE, 0)


def become(user: list | None) -> None:
    """Limited mode started as root: drop to the sandbox user (nobody) before running code.
    Then die with the parent, and stay non-dumpable: the change of user reset both (the
    caller set them, or inherited non-dumpable, otherwise)."""
    if user is not None:
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        prctl(PR_SET_DUMPABLE, 0)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send_message(connection: socket.socket, data: bytes, fds: list = ()) -> None:
    """`data` and `fds` as one message: inline when short, else in a memfd sent first."""
    if len(data) < INLINE_BYTES:
        socket.send_fds(connection, [b"=" + data], list(fds))
        return
    memfd = os.memfd_create("message")
    try:
        write_all(memfd, data)
        os.lseek(memfd, 0, os.SEEK_SET)
        socket.send_fds(connection, [b"@"], [memfd, *fds])
    finally:
        os.close(memfd)


def receive_message(connection: socket.socket, max_fds: int) -> tuple:
    """(data, fds) of one `send_message`; (b"", []) once the other end has closed."""
    message, fds, _, _ = socket.recv_fds(connection, INLINE_BYTES + 1, max_fds + 1)
    if message[:1] == b"@" and fds:
        with os.fdopen(fds[0], "rb") as memfd:
            return memfd.read(), fds[1:]
    return message[1:], fds


def keep_fds(fds: list) -> None:
    """Make fds[i] descriptor number i, and close every other descriptor."""
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, len(fds) + 16) for fd in fds]  # out of the way
    for target, fd in enumerate(moved):
        os.dup2(fd, target)
    os.closerange(len(fds), resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def child_pids() -> list:
    fd = os.open(f"/proc/self/task/{os.getpid()}/children", os.O_RDONLY)
    try:
        return [int(pid) for pid in os.read(fd, 1 << 16).split()]
    finally:
        os.close(fd)


def kill_descendants(pid: int) -> int:
    """SIGKILL `pid`'s process group (pid 0: none) and every descendant; return `pid`'s wait
    status.

    The caller is a child subreaper, so orphans (double forks, setsid) are re-parented to it
    and none can escape: once it has no children left it has no descendants either.
    """
    status = 0
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            status = os.waitpid(pid, 0)[1]  # killed: it ends at once
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if reaped == 0:  # some are still running: kill every child, then wait for one
            for other in child_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other, signal.SIGKILL)
            os.waitpid(-1, 0)
