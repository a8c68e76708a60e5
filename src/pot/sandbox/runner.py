"""The warm worker that runs inside the sandbox (standard library only, no `pot` imports).

The host runs it after the source of `pot.sandbox.values` (encode, decode, UnsupportedValue).

The host starts it as `python3 -S -s -B -P -c <this file> [UID GID]`; with UID and GID (limited
mode started as root) each forked child switches to that user before running the program.

It reads one JSON request per line on stdin and answers one JSON line on stdout. Each request
is one program on one test: the worker forks a child with setsid and rlimits, gives it real
file descriptors (a memfd on stdin, pipes on stdout and stderr), runs setup code, program and
test in the child, and reports what happened. It never sees expected outputs: the host compares
them. The child writes its record on a separate pipe, prefixed by a per-run random nonce, so
printing a fake result or exiting early cannot pass a test.
"""

import ast
import builtins
import contextlib
import ctypes
import gc
import io
import json
import linecache
import os
import resource
import select
import shutil
import signal
import sys
import time
import traceback

# Bound here, at start-up: programs share this interpreter and may rebind the builtins (e.g.
# `builtins.exec = lambda *a: None` to skip the test), so the harness must not look them up later.
exec, compile, isinstance, repr = exec, compile, isinstance, repr
BaseException, SystemExit, AssertionError, MemoryError = (
    BaseException, SystemExit, AssertionError, MemoryError
)  # fmt: skip

RESULT_FD = 3
PROGRAM_USER = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else None  # uid, gid
READ_CHUNK = 1 << 16
STDERR_KEEP = 4096
FIELD_CHARS = 1000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
SOURCES = ("<setup>", "<program>", "<test>")


LIBC = ctypes.CDLL(None, use_errno=True)
quote = json.encoder.encode_basestring_ascii  # C function, bound before any program runs


def prctl(option: int, value: int) -> None:
    LIBC.prctl(option, value, 0, 0, 0)


def send(record: dict) -> None:
    data = (json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def clip(text: str, limit: int = FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n...\n" + text[-limit // 2 :]


def remember_source(name: str, source: str) -> None:
    """Let tracebacks show the lines of code compiled from strings."""
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)


def format_error(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in SOURCES]
    lines = traceback.format_list(frames[-3:]) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def last_frame(exc: BaseException):
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def failed_in_test(exc: BaseException) -> bool:
    """An assert of the test itself failed: the program ran but gave a wrong answer."""
    tb = last_frame(exc)
    return (
        isinstance(exc, AssertionError)
        and tb is not None
        and tb.tb_frame.f_code.co_filename == "<test>"
    )


def failed_assert_left_side(exc: BaseException) -> str:
    """For `assert a == b` in a test, the value of `a` (what the program actually returned)."""
    tb = last_frame(exc)
    source = "".join(linecache.cache["<test>"][2])
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Assert)
            and node.lineno <= tb.tb_lineno <= (node.end_lineno or node.lineno)
            and isinstance(node.test, ast.Compare)
            and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)
        ):
            left = compile(ast.Expression(node.test.left), "<test>", "eval")
            value = eval(left, tb.tb_frame.f_globals, tb.tb_frame.f_locals)
            return f"{ast.unparse(node.test.left)} returned {clip(repr(value), 300)}"
    return ""


def call_entry_point(namespace: dict, entry_point: str, arguments: str) -> object:
    function = namespace.get(entry_point)
    if function is None and hasattr(namespace.get("Solution"), entry_point):
        function = getattr(namespace["Solution"](), entry_point)  # LiveCodeBench's class style
    if function is None:
        raise NameError(f"the program does not define {entry_point!r}")
    return function(*decode(arguments))  # noqa: F821 - values.py is run before this file


def record_line(nonce: str, record: dict[str, str]) -> bytes:
    """The record as one JSON line, built without json.dumps, which the program may patch."""
    fields = ", ".join(f"{quote(key)}: {quote(value)}" for key, value in record.items())
    return f"{nonce}{{{fields}}}\n".encode()


def run_in_child(request: dict, program: object, nonce: str) -> None:
    """Body of the forked child: setup, program, test; then one record on RESULT_FD."""
    write, exit_now = os.write, os._exit  # the program may monkeypatch os

    def report(record: dict[str, str]) -> None:
        write(RESULT_FD, record_line(nonce, record))

    kind = request["kind"]
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    phase = "setup"
    record = {"status": "completed"}
    try:
        if request["setup"]:
            exec(compile(request["setup"], "<setup>", "exec"), namespace)
        phase = "program"
        exec(program, namespace)
        phase = "test"
        report({"event": "program_done"})
        if kind == "assert":
            exec(compile(request["source"], "<test>", "exec"), namespace)
        elif kind == "call":
            value = call_entry_point(namespace, request["entry_point"], request["input"])
            try:
                record["value"] = encode(value)  # noqa: F821
            except UnsupportedValue as exc:  # noqa: F821
                record["unsupported"] = f"returned an {exc}"
    except SystemExit as exc:
        if not (kind == "stdio" and exc.code in (None, 0)):
            message = f"SystemExit({exc.code!r}) raised before the test finished"
            record = {"status": "runtime_error", "phase": phase, "error": message}
    except BaseException as exc:  # noqa: BLE001 - any failure of untrusted code is a verdict
        status = "memory_limit" if isinstance(exc, MemoryError) else "runtime_error"
        error = format_error(exc)
        if phase == "test" and failed_in_test(exc):
            status = "wrong_answer"
            with contextlib.suppress(BaseException):  # the hint is optional
                error = f"{error}\n{failed_assert_left_side(exc)}".rstrip()
        record = {"status": status, "phase": phase, "error": clip(error)}
    with contextlib.suppress(BaseException):  # the program may have closed stdout
        sys.stdout.flush()
    try:
        report(record)
    except BaseException:  # noqa: BLE001 - e.g. the value was too large to encode
        report({"status": "memory_limit", "phase": phase, "error": "MemoryError"})
    exit_now(0)


def set_limits(request: dict) -> None:
    def limit(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    limit(resource.RLIMIT_AS, request["memory_mb"] << 20)
    limit(resource.RLIMIT_CPU, int(request["timeout_s"]) + 1)
    limit(resource.RLIMIT_FSIZE, request["max_file_bytes"])
    limit(resource.RLIMIT_NOFILE, request["max_open_files"])
    limit(resource.RLIMIT_NPROC, request["max_processes"])
    limit(resource.RLIMIT_CORE, 0)


def start_child(request: dict, program: object, stdin_fd: int, out_w: int, err_w: int, res_w: int):
    nonce = os.urandom(16).hex()
    pid = os.fork()
    if pid:
        return pid, nonce
    try:
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # in limited mode nothing else ends it with us
        for fd, target in ((stdin_fd, 0), (out_w, 1), (err_w, 2), (res_w, RESULT_FD)):
            os.dup2(fd, target)
        os.closerange(RESULT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        set_limits(request)
        if PROGRAM_USER is not None:  # limited mode started as root: the program runs as nobody
            os.setgroups([])
            os.setgid(PROGRAM_USER[1])
            os.setuid(PROGRAM_USER[0])
        sys.argv = ["<program>"]
        sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(
            open(2, "wb", buffering=0, closefd=False),  # noqa: SIM115
            encoding="utf-8",
            write_through=True,
        )
        run_in_child(request, program, nonce)
    finally:
        os._exit(1)


def child_pids() -> list[int]:
    with open(f"/proc/self/task/{os.getpid()}/children") as f:
        return [int(pid) for pid in f.read().split()]


def kill_descendants(pid: int) -> int:
    """SIGKILL the child's process group and every descendant; return the child's wait status.

    This worker is a child subreaper, so orphans (double forks, setsid) are re-parented to it
    and none can escape: once it has no children left it has no descendants either.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    status = 0
    while True:
        try:
            reaped, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if reaped == 0:  # some are still running: kill every child, then wait for one
            for other in child_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other, signal.SIGKILL)
            reaped, wait_status = os.waitpid(-1, 0)
        if reaped == pid:
            status = wait_status


def parse_records(data: bytes, nonce: str) -> list[dict]:
    prefix = nonce.encode()
    return [
        json.loads(line[len(prefix) :]) for line in data.splitlines() if line.startswith(prefix)
    ]


def drain(fd: int, buffer: bytearray, limit: int) -> None:
    os.set_blocking(fd, False)
    try:
        while len(buffer) <= limit and (data := os.read(fd, READ_CHUNK)):
            buffer += data
    except BlockingIOError:
        pass


def run_one(request: dict, program: object) -> dict:
    stdin_fd = os.memfd_create("stdin")
    os.write(stdin_fd, request["input"].encode() if request["kind"] == "stdio" else b"")
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    start = time.monotonic()
    pid, nonce = start_child(request, program, stdin_fd, out_w, err_w, res_w)
    for fd in (stdin_fd, out_w, err_w, res_w):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    buffers = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
    open_fds = [out_r, err_r, res_r, pidfd]
    deadline = start + request["timeout_s"]
    limit = request["output_bytes"]
    printed = 0  # stdout and stderr bytes, for the output limit
    stopped = ""
    while not stopped:
        remaining = deadline - time.monotonic()
        ready = select.select(open_fds, [], [], max(remaining, 0))[0] if remaining > 0 else []
        if not ready:
            stopped = "time_limit"
        for fd in ready:
            if fd == pidfd:
                stopped = "exited"
                continue
            data = os.read(fd, READ_CHUNK)
            if not data:
                open_fds.remove(fd)
            buffers[fd] += data
            printed += len(data) if fd != res_r else 0
            if fd == err_r and len(buffers[fd]) > 2 * STDERR_KEEP:
                del buffers[fd][:-STDERR_KEEP]
        if printed > limit or len(buffers[res_r]) > limit:
            stopped = "output_limit"
    seconds = time.monotonic() - start
    wait_status = kill_descendants(pid)
    for fd in (out_r, err_r, res_r):
        drain(fd, buffers[fd], limit)
        os.close(fd)
    os.close(pidfd)
    records = parse_records(bytes(buffers[res_r]), nonce)
    stdout = bytes(buffers[out_r])
    reply = {
        "seconds": seconds,
        "stdout": stdout[:limit].decode("utf-8", "replace"),
        "stderr": clip(bytes(buffers[err_r][-STDERR_KEEP:]).decode("utf-8", "replace")),
        "phase": "test" if {"event": "program_done"} in records else "program",
    }
    final = [r for r in records if "status" in r]
    if stopped == "time_limit":
        return reply | {"status": "time_limit", "error": "time limit exceeded"}
    if stopped == "output_limit" or len(stdout) > limit:
        return reply | {"status": "output_limit", "error": f"output exceeded {limit} bytes"}
    if final:
        return reply | final[-1]
    return reply | exit_without_record(request["kind"], wait_status)


def exit_without_record(kind: str, wait_status: int) -> dict:
    """The child ended without reporting: it exited early, was killed, or crashed."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        status = "time_limit" if number == signal.SIGXCPU else "runtime_error"
        return {"status": status, "error": f"killed by signal {signal.Signals(number).name}"}
    code = os.waitstatus_to_exitcode(wait_status)
    if kind == "stdio" and code == 0:
        return {"status": "completed"}  # e.g. flush + os._exit(0): stdout is what counts
    return {"status": "runtime_error", "error": f"exited with code {code} before the test finished"}


def clear_directory(path: str) -> None:
    """Remove what the last program left in the scratch directory, so runs cannot share files."""
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def compile_program(source: str) -> tuple[object, str]:
    try:
        return compile(source, "<program>", "exec", dont_inherit=True), ""
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return None, clip("".join(traceback.format_exception_only(type(exc), exc)).rstrip())


def main() -> None:
    prctl(PR_SET_DUMPABLE, 0)  # no same-uid process may read or write this one's memory
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as PID 1 (bwrap) no other signal can reach it
    scratch = os.getcwd()
    gc.freeze()  # forked children's garbage collections then leave the worker's pages shared
    send({"ready": True, "python": sys.version.split()[0], "uid": os.getuid()})
    last_source, program, syntax_error = None, None, ""
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if request["program"] != last_source:
            last_source = request["program"]
            program, syntax_error = compile_program(last_source)
            remember_source("<program>", last_source)
        if syntax_error:
            send({"status": "syntax_error", "error": syntax_error, "seconds": 0.0})
            continue
        remember_source("<setup>", request["setup"])
        remember_source("<test>", request["source"])
        send(run_one(request, program))
        clear_directory(scratch)


if __name__ == "__main__":
    main()
