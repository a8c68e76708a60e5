"""In the sandbox, trusted side: the judge worker, which talks to the host, and its judge.

Standard library only, no `pot` imports; it runs after the sources of `pot.sandbox.values` and
`in_sandbox_common.py`. The host starts it as `python3 -S -s -B -P -c <source> <config>`. At
start it launches the program server (`in_sandbox_program.py`, a fresh interpreter that never
sees tests). Then it reads one JSON request per line on stdin (one program on one test) and
answers one JSON line on stdout:

1. an assert test goes to the judge process (forked from this worker once, kept across tests),
   which never executes the program's code: it runs setup code and the test (asserts,
   `check(candidate)`) with proxies in place of the program's functions, each call crossing
   the channel as plain data (`pot.sandbox.values`), and answers with the test's record; a
   call test's one call this worker makes itself; a stdin/stdout test needs no call;
2. it hands the program server a job (program, setup code, limits; stdin, stdout, stderr and
   the call channel as file descriptors), and the server forks the program's process;
3. it enforces the time and output limits, kills the program's process group and has the
   server end what else it started and empty the scratch directories (before the next job;
   it waits for that only when the verdict needs the program's exit status), and reports. The
   host compares call results and stdout with the expected values.

Only the judge worker and the judge hold the host's channel and the test's source; the
program's process gets its own descriptors only.
"""

import ast
import builtins
import contextlib
import gc
import json
import linecache
import os
import select
import signal
import socket
import sys
import time

# {"server": the program server's argv, "user": [uid, gid] or null, "scratch": [directories]}
CONFIG = json.loads(sys.argv[1])
READ_CHUNK = 1 << 16
STDERR_KEEP = 4096
HINT_SHARE = 0.5  # of the time left, for re-running the failed assert's left side
STOP_TIMEOUT_S = 2.0  # for the program server to kill a program's processes
COMPILED_KEEP = 1024  # compiled tests kept by the judge
COMPILED: dict = {}
DEV_NULL = os.open("/dev/null", os.O_RDONLY)  # stdin of programs that read none
CATCHABLE = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGALRM, signal.SIGPIPE, signal.SIGTSTP, signal.SIGTTIN,
             signal.SIGTTOU, signal.SIGXFSZ)  # fmt: skip


def send(record: dict) -> None:
    data = (json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


# --- the judge process: runs the test, reaches the program through a channel ----------------


class ProgramEnded(BaseException):
    """The program's process ended, or broke the call protocol, before the test finished.
    A BaseException, so that no `except Exception` of a test can swallow it."""


class ProgramError(Exception):
    """The program raised an exception of its own class (its name is in the message)."""


class OpaqueValue(TypeError):
    """The test compared, tested or inspected an object of the program's own class."""


class Channel:
    """The judge's end of the call channel: one JSON line each way per call."""

    def __init__(self, calls_fd: int, replies_fd: int, limit: int, deadline: float):
        self.calls_fd, self.replies_fd, self.limit = calls_fd, replies_fd, limit
        self.deadline = deadline
        self.pending = bytearray()
        self.wait_until: float | None = None  # a shorter deadline (the feedback hint)

    def receive(self) -> dict:
        while (end := self.pending.find(b"\n")) < 0:
            if self.wait_until is not None:
                left = self.wait_until - time.monotonic()
                if left <= 0 or not select.select([self.replies_fd], [], [], left)[0]:
                    raise ProgramEnded("no reply in time")
            data = os.read(self.replies_fd, READ_CHUNK)
            if not data:
                raise ProgramEnded("the program's process ended before the test finished")
            self.pending += data
            if len(self.pending) > self.limit:
                raise OutputLimit()
        line = bytes(self.pending[:end])
        del self.pending[: end + 1]
        try:
            message = json.loads(line)
        except ValueError:
            raise ProgramEnded("the program's process sent an unreadable reply") from None
        if type(message) is not dict:
            raise ProgramEnded("the program's process sent an unreadable reply")
        return message

    def request(self, target: object, arguments: str) -> dict:
        data = json.dumps({"target": target, "arguments": arguments}) + "\n"
        view = memoryview(data.encode())
        try:
            while view:
                view = view[os.write(self.calls_fd, view) :]
        except OSError:  # EPIPE: the program's process is gone
            raise ProgramEnded("the program's process ended before the test finished") from None
        return self.receive()

    def call(self, target: object, args: tuple, kwargs: dict) -> object:
        try:
            arguments = encode([list(args), kwargs], handle=handle_payload)
        except UnsupportedValue as exc:
            raise TypeError(f"the test cannot pass this to the program: {exc}") from None
        return returned_value(self.request(target, arguments))


class OutputLimit(BaseException):
    """The program's reply exceeded the output limit."""


CHANNEL: Channel | None = None


class Proxy:
    """Stands for a function or class the program defined; calling it calls the program."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        return CHANNEL.call(self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.name} of the program>"


class Handle:
    """An object of the program's own class (or a generator, an iterator...): the test can
    pass it back to the program or call it, but not compare, test or inspect it."""

    __slots__ = ("id", "type")

    def __init__(self, identifier: int, type_name: str):
        object.__setattr__(self, "id", identifier)
        object.__setattr__(self, "type", type_name)

    def opaque(self, *args):
        raise OpaqueValue(
            f"the program returned an object of type {self.type!r}, which the test cannot "
            "compare or inspect: return plain data (None, bool, int, float, complex, str, bytes, "
            "list, tuple, dict, set, frozenset)"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = opaque
    __iter__ = __contains__ = __getitem__ = __getattr__ = __setattr__ = __index__ = opaque
    __int__ = __float__ = __str__ = __format__ = opaque
    __hash__ = object.__hash__

    def __call__(self, *args, **kwargs):
        return CHANNEL.call(self.id, args, kwargs)

    def __repr__(self) -> str:
        return f"<{clip(self.type, 80)} object of the program>"


def handle_payload(value: object) -> object:
    """How the test's side names what is not plain data: a handle by its id, the program's
    function by its name, a builtin (`int`, as in MBPP 533) as ["builtin", name]."""
    if type(value) is Handle:
        return object.__getattribute__(value, "id")
    if type(value) is Proxy:
        return value.name
    name = getattr(value, "__name__", None)
    if type(name) is str and getattr(builtins, name, None) is value:
        return ["builtin", name]
    raise UnsupportedValue(f"unsupported type: {type_name(value)}")


def make_handle(payload: object) -> Handle:
    if not (
        type(payload) is list
        and len(payload) == 2
        and type(payload[0]) is int
        and type(payload[1]) is str
    ):
        raise ValueError("not a valid value encoding: bad handle")
    return Handle(payload[0], payload[1])


def returned_value(reply: dict) -> object:
    if "value" in reply and type(reply["value"]) is str:
        try:
            return decode(reply["value"], handle=make_handle)
        except ValueError as exc:
            raise ProgramEnded(f"the program's return value could not be decoded ({exc})") from None
    if type(reply.get("raised")) is dict:
        raise rebuilt_exception(reply["raised"])
    if type(reply.get("exited")) is str:
        raise ProgramEnded(f"{clip(reply['exited'], 200)} raised before the test finished")
    raise ProgramEnded("the program's process sent an unreadable reply")


def rebuilt_exception(raised: dict) -> BaseException:
    """The program's exception as the test would have seen it: the same builtin class (a test
    may expect a ValueError), else ProgramError; it carries the program's traceback."""
    name, message = str(raised.get("type", "?")), str(raised.get("message", ""))
    kind = getattr(builtins, name, None) if raised.get("builtin") is True else None
    exc: BaseException | None = None
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        with contextlib.suppress(Exception):
            exc = kind(message)
    if exc is None:
        exc = ProgramError(f"{clip(name, 100)}: {message}")
    exc.program_traceback = clip(str(raised.get("traceback", "")))
    return exc


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


def failed_assert_values(exc: BaseException, channel: Channel) -> str:
    """For `assert a == b` in a test: the values of `a` (what the program actually returned)
    and `b` (what was expected), evaluated again in the failing frame, with a short deadline."""
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
            channel.wait_until = time.monotonic() + HINT_SHARE * (
                channel.deadline - time.monotonic()
            )
            frame = tb.tb_frame
            left, right = (
                eval(
                    compile(ast.Expression(side), "<test>", "eval"), frame.f_globals, frame.f_locals
                )
                for side in (node.test.left, node.test.comparators[0])
            )
            return (
                f"{ast.unparse(node.test.left)} returned {clip(repr(left), 300)}, "
                f"expected {clip(repr(right), 300)}"
            )
    return ""


def compiled(source: str, name: str) -> object:
    """Trusted code (setup code, a test) compiled once: a worker judges many programs on the
    same tests."""
    code = COMPILED.get((source, name))
    if code is None:
        if len(COMPILED) >= COMPILED_KEEP:
            COMPILED.clear()
        code = COMPILED[source, name] = compile(source, name, "exec")
    return code


def test_namespace(request: dict, names: list) -> dict:
    """Setup code, then a proxy for each callable the program defined, except where setup
    code (HumanEval's prompt: its helpers such as `poly`) already bound the name: the tests
    use the trusted helper. The entry point is always the program's."""
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    if request["setup"]:
        exec(compiled(request["setup"], "<setup>"), namespace)
    for name in names:
        if name == request["entry_point"] or (
            type(name) is str and name not in namespace and not hasattr(builtins, name)
        ):
            namespace[name] = Proxy(name)
    return namespace


def program_failure(message: dict) -> dict:
    """The record when the program failed before its test: at import, or in setup code."""
    phase = message.get("phase") if message.get("phase") in ("setup", "program") else "program"
    if type(message.get("raised")) is dict:
        raised = message["raised"]
        status = "memory_limit" if raised.get("type") == "MemoryError" else "runtime_error"
        return {"status": status, "phase": phase, "error": clip(str(raised.get("traceback", "")))}
    if type(message.get("exited")) is str:
        error = f"{clip(message['exited'], 200)} raised before the test finished"
        return {"status": "runtime_error", "phase": phase, "error": error}
    error = "the program's process broke the call protocol (no greeting)"
    return {"status": "runtime_error", "phase": phase, "error": error}


def call_record(reply: dict) -> dict:
    """A call test's record from the program's reply (its value is compared by the host)."""
    if type(reply.get("value")) is str:
        return {"status": "completed", "value": reply["value"]}
    if type(reply.get("unsupported")) is str:
        return {"status": "completed", "unsupported": clip(reply["unsupported"], 300)}
    try:
        returned_value(reply)
    except ProgramEnded as exc:
        return ended(exc, "test")
    except BaseException as exc:  # noqa: BLE001 - the rebuilt exception of the program
        return error_record(exc)
    return {"status": "runtime_error", "phase": "test", "error": "unreadable reply"}


def error_record(exc: BaseException) -> dict:
    program_traceback = getattr(exc, "program_traceback", None)
    status = "memory_limit" if isinstance(exc, MemoryError) else "runtime_error"
    if program_traceback is not None:
        error = program_traceback
    elif isinstance(exc, OpaqueValue):
        status, error = "wrong_answer", format_error(exc)
    else:
        error = format_error(exc)
    return {"status": status, "phase": "test", "error": clip(error)}


def judge_asserts(request: dict, names: list, channel: Channel) -> dict:
    phase = "setup"
    try:
        namespace = test_namespace(request, names)
        phase = "test"
        exec(compiled(request["source"], "<test>"), namespace)
    except ProgramEnded as exc:
        return ended(exc, "test")
    except OutputLimit:
        return value_limit(channel.limit)
    except BaseException as exc:  # noqa: BLE001 - every failure is a verdict
        if phase == "test" and failed_in_test(exc):
            error = format_error(exc)
            with contextlib.suppress(BaseException):  # the hint is optional
                error = f"{error}\n{failed_assert_values(exc, channel)}".rstrip()
            return {"status": "wrong_answer", "phase": "test", "error": clip(error)}
        return error_record(exc) | {"phase": phase}
    return {"status": "completed"}


def value_limit(limit: int) -> dict:
    error = f"the returned value is over the output limit (Limits.output_bytes = {limit})"
    return {"status": "output_limit", "phase": "test", "error": error}


def printed_limit(limit: int) -> dict:
    error = f"the printed output is over the output limit (Limits.output_bytes = {limit})"
    return {"status": "output_limit", "error": error}


def ended(exc: ProgramEnded, phase: str) -> dict:
    return {"status": "runtime_error", "phase": phase, "error": str(exc), "program_ended": True}


def judge(request: dict, channel: Channel) -> dict:
    try:
        greeting = channel.receive()
    except ProgramEnded as exc:
        return ended(exc, "program")
    if type(greeting.get("ready")) is not list:
        return program_failure(greeting)
    return judge_asserts(request, greeting["ready"], channel)


def judge_tests(connection_fd: int, limits: dict) -> None:
    """Body of the judge process: one assert test per message on the socket, answered with
    its record, until the socket closes. It lives across tests: forking one per test would
    double a test's cost. The worker's wall clock bounds each test (no CPU-time limit here)."""
    global CHANNEL
    try:
        for number in CATCHABLE:  # the program runs as the same user and may signal us
            signal.signal(number, signal.SIG_IGN)
        null_in, null_out = os.open("/dev/null", os.O_RDONLY), os.open("/dev/null", os.O_WRONLY)
        keep_fds([null_in, null_out, 2, connection_fd])
        set_limits(limits, cpu=False)
        become(CONFIG["user"])
        connection = socket.socket(fileno=3)
        while True:
            data, fds = receive_message(connection, 2)
            if len(fds) != 2:
                return
            request = json.loads(data)
            deadline = time.monotonic() + request["timeout_s"]
            CHANNEL = Channel(fds[0], fds[1], request["output_bytes"], deadline)
            remember_source("<setup>", request["setup"])
            remember_source("<test>", request["source"])
            try:
                record = judge(request, CHANNEL)
            except ProgramEnded as exc:
                record = ended(exc, "test")
            except OutputLimit:
                record = value_limit(CHANNEL.limit)
            os.close(fds[0])
            os.close(fds[1])
            connection.send(json.dumps(record).encode())
    finally:
        os._exit(0)


# --- the judge worker: one test at a time, with the program server ---------------------------


class Server:
    """The program server process and the socket to it (restarted if a program kills it)."""

    def __init__(self) -> None:
        self.pid = 0
        self.connection: socket.socket | None = None
        self.stopping = False  # a "stop" is sent, its answer not read yet

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = json.dumps({"user": CONFIG["user"], "scratch": CONFIG["scratch"]})
        pid = os.fork()
        if pid == 0:
            try:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # limited mode: it ends with us
                keep_fds([theirs.fileno(), os.open("/dev/null", os.O_WRONLY), 2])
                os.execv(CONFIG["server"][0], [*CONFIG["server"], config])
            finally:
                os._exit(127)
        theirs.close()
        self.pid, self.connection, self.stopping = pid, ours, False

    def ask(self, data: bytes, fds: list = ()) -> dict:
        """Send a job and wait for the answer; {} if the server is gone, after starting a new
        one. The last program's stop is complete first."""
        self.stopped()
        self.connection.settimeout(None)
        try:
            send_message(self.connection, data, list(fds))
            answer = self.connection.recv(1 << 16)
        except OSError:
            answer = b""
        if not answer:
            self.restart()
            return {}
        return json.loads(answer)

    def stop_program(self, pid: int) -> None:
        """Kill the test's program and have the server end all it started, without waiting:
        the server finishes that before its next job (`stopped` waits for it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
        try:
            send_message(self.connection, b"stop")
            self.stopping = True
        except OSError:
            self.restart()

    def stopped(self) -> int:
        """Wait until the stopped program and all it started are dead and the scratch
        directories empty; its wait status (0 if unknown). The program may have stopped the
        server (SIGSTOP, as the same user; `stop_program` resumed it): if it still does not
        answer (a left-behind process keeps stopping it), replace it."""
        if not self.stopping:
            return 0
        self.stopping = False
        self.connection.settimeout(STOP_TIMEOUT_S)
        try:
            answer = self.connection.recv(1 << 16)
        except OSError:  # socket.timeout too
            answer = b""
        if not answer:
            self.restart()
            return 0
        return json.loads(answer).get("stopped", 0)

    def restart(self) -> None:
        """The server died (a program killed it): kill what is left below us (orphans come to
        us, the subreaper), then start a new one."""
        self.connection.close()
        kill_descendants(0)
        self.start()


def memfd_with(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class Judge:
    """The judge process (forked from this worker: it never runs the program's code), started
    when an assert test needs it and again after a test it did not finish."""

    def __init__(self) -> None:
        self.pid, self.pidfd, self.limits = 0, -1, None
        self.connection: socket.socket | None = None

    def send(self, request: dict, calls_w: int, replies_r: int) -> None:
        limits = {key: request[key] for key in LIMIT_KEYS}
        if self.pid and (self.limits != limits or select.select([self.pidfd], [], [], 0)[0]):
            self.stop()  # other limits, or a program killed it
        if not self.pid:
            self.start(limits)
        else:  # the last program's processes are dead now, none can stop it after this
            self.resume()
        test = json.dumps({key: request[key] for key in JUDGE_KEYS}).encode()
        with contextlib.suppress(OSError):  # it just died: the test finds no record, says so
            send_message(self.connection, test, [calls_w, replies_r])

    def start(self, limits: dict) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            judge_tests(theirs.fileno(), limits)
        theirs.close()
        self.pid, self.pidfd, self.limits, self.connection = pid, os.pidfd_open(pid), limits, ours

    def discard(self) -> None:
        """Drop the record of a test whose program never started (the judge finds its channel
        closed at once)."""
        fd = self.connection.fileno()
        if not (select.select([fd], [], [], STOP_TIMEOUT_S)[0] and os.read(fd, READ_CHUNK)):
            self.stop()

    def resume(self) -> None:
        """A program may have stopped it (SIGSTOP), also after its test had been answered."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):  # gone in a restart
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self.connection.close()
        os.close(self.pidfd)
        self.pid, self.pidfd = 0, -1


def exit_description(wait_status: int) -> tuple:
    """(status, error) for a program process that ended with `wait_status`."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        status = "time_limit" if number == signal.SIGXCPU else "runtime_error"
        return status, f"killed by signal {signal.Signals(number).name}"
    code = os.waitstatus_to_exitcode(wait_status)
    return "runtime_error", f"exited with code {code} before the test finished"


def drain(fd: int, buffer: bytearray, limit: int) -> None:
    os.set_blocking(fd, False)
    try:
        while len(buffer) <= limit and (data := os.read(fd, READ_CHUNK)):
            buffer += data
    except BlockingIOError:
        pass


class CallExchange:
    """A call test, made by the judge worker itself: it runs no test code, so it needs no judge
    process. After the program's greeting it writes the one call; the reply ends the test."""

    def __init__(self, request: dict, calls_fd: int):
        self.calls_fd = calls_fd
        call = {"target": request["entry_point"], "arguments": request["input"], "plain": True}
        self.unsent = memoryview((json.dumps(call) + "\n").encode())
        self.greeted = False

    def answered(self, replies: bytearray) -> bool:
        lines = replies.count(b"\n")
        if not self.greeted and lines:
            self.greeted = True
            os.set_blocking(self.calls_fd, False)  # written as the program reads
            if b'"ready"' not in replies[: replies.index(b"\n")]:
                return True  # it failed before its test: nothing to call
        return lines >= 2

    def writable(self) -> list:
        return [self.calls_fd] if self.greeted and self.unsent else []

    def write(self) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            self.unsent = self.unsent[os.write(self.calls_fd, self.unsent) :]

    def record(self, replies: bytes) -> dict:
        lines = replies.split(b"\n")[:-1]
        messages = []
        for line in lines[:2]:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            messages.append(message if type(message) is dict else {})
        if not messages:
            return ended(ProgramEnded("the program's process ended before its test"), "program")
        if type(messages[0].get("ready")) is not list:
            return program_failure(messages[0])
        if len(messages) < 2:
            return ended(
                ProgramEnded("the program's process ended before the test finished"), "test"
            )
        return call_record(messages[1])


def watch(request: dict, fds: dict, pidfd: int, start: float, exchange=None) -> str:
    # exchange: a CallExchange, True (the judge's record ends the test), or None
    """Collect output until `pidfd` (the judge, or the program) ends, the call test's reply,
    the time limit or the output limit; return why it stopped. `fds` maps readable fds to
    their buffers: stdout, stderr (only its end is kept), then the judge's record or the
    program's replies."""
    deadline = start + request["timeout_s"]
    limit = request["output_bytes"]
    out_fd, err_fd, last_fd = fds
    open_fds = [*fds, pidfd]
    printed = 0  # stdout and stderr bytes, for the output limit
    while True:
        remaining = deadline - time.monotonic()
        writable = exchange.writable() if isinstance(exchange, CallExchange) else []
        ready, can_write, _ = (
            select.select(open_fds, writable, [], remaining) if remaining > 0 else ([], [], [])
        )
        if not ready and not can_write:
            return "time_limit"
        if can_write:
            exchange.write()
        for fd in ready:
            if fd == pidfd:
                return "exited"
            data = os.read(fd, READ_CHUNK)
            if not data:
                open_fds.remove(fd)
            fds[fd] += data
            printed += len(data) if fd != last_fd else 0
            if fd == err_fd and len(fds[fd]) > 2 * STDERR_KEEP:
                del fds[fd][:-STDERR_KEEP]
            if fd == last_fd and data and (exchange is True or exchange.answered(fds[fd])):
                return "answered"
        if printed > limit:
            return "output_limit"
        if len(fds[last_fd]) > limit:
            return "value_limit"


def stdio_outcome(reports: bytes, wait_status: int) -> dict:
    """A stdio program's status from how it ended; its own report adds the traceback."""
    if os.WIFEXITED(wait_status) and os.WEXITSTATUS(wait_status) == 0:
        return {"status": "completed"}
    status, error = exit_description(wait_status)
    with contextlib.suppress(ValueError, IndexError):
        message = json.loads(reports.splitlines()[0])
        if type(message) is dict and ("raised" in message or "exited" in message):
            return program_failure(message)
    return {"status": status, "error": error}


def function_outcome(packet: bytes, server: Server) -> dict:
    try:
        record = json.loads(packet)
    except ValueError:
        error = "the judge process died (did the program signal it?)"
        return {"status": "runtime_error", "phase": "test", "error": error}
    return with_exit(record, server)


def with_exit(record: dict, server: Server) -> dict:
    if record.pop("program_ended", False):  # say how: a CPU time limit, a signal, an exit
        status, how = exit_description(server.stopped())
        record |= {"status": status, "error": f"{record['error']} ({how})"}
    return record


def run_one(request: dict, server: Server, judge: Judge) -> dict:
    kind = request["kind"]
    job = {key: request[key] for key in ("program", "setup", "kind")}
    job["limits"] = {key: request[key] for key in LIMIT_KEYS}
    data = json.dumps(job).encode()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    calls_r, calls_w = os.pipe()
    replies_r, replies_w = os.pipe()
    stdin_fd = memfd_with("stdin", request["input"].encode()) if kind == "stdio" else DEV_NULL
    if kind == "assert":  # the judge prepares the test while the server starts the program
        server.stopped()  # first: replacing a stuck server ends the judge too
        judge.send(request, calls_w, replies_r)
        for fd in (calls_w, replies_r):
            os.close(fd)
    job_fds = [stdin_fd, out_w, err_w, calls_r, replies_w]
    answer = server.ask(data, job_fds) or server.ask(data, job_fds)  # again if it was gone
    start = time.monotonic()  # the program's time: not the start of a new server
    for fd in job_fds[1:] if stdin_fd == DEV_NULL else job_fds:
        os.close(fd)
    if "started" not in answer:
        for fd in (out_r, err_r) if kind == "assert" else (out_r, err_r, calls_w, replies_r):
            os.close(fd)
        if kind == "assert":
            judge.discard()
        if "syntax_error" in answer:
            return {"status": "syntax_error", "error": answer["syntax_error"], "seconds": 0.0}
        return {"status": "runtime_error", "error": "the program server died", "seconds": 0.0}
    exchange = None
    if kind == "assert":
        pidfd, last_r = judge.pidfd, judge.connection.fileno()
    else:
        if kind == "stdio":
            os.close(calls_w)
        else:
            exchange = CallExchange(request, calls_w)
        pidfd, last_r = os.pidfd_open(answer["started"]), replies_r
    buffers = {out_r: bytearray(), err_r: bytearray(), last_r: bytearray()}
    stopped = watch(request, buffers, pidfd, start, exchange or kind == "assert")
    seconds = time.monotonic() - start
    server.stop_program(answer["started"])
    limit = request["output_bytes"]
    if kind == "assert":
        record = bytes(buffers.pop(last_r))
        if stopped != "answered":
            judge.stop()  # it may be in the middle of the test
    else:
        os.close(pidfd)
    for fd in buffers:
        drain(fd, buffers[fd], limit)
        os.close(fd)
    if exchange:
        os.close(calls_w)
    stdout = bytes(buffers[out_r])
    reply = {
        "seconds": seconds,
        "stdout": stdout[:limit].decode("utf-8", "replace"),
        "stderr": clip(bytes(buffers[err_r][-STDERR_KEEP:]).decode("utf-8", "replace")),
    }
    if stopped == "time_limit":
        return reply | {"status": "time_limit", "error": "time limit exceeded"}
    if stopped == "output_limit" or len(stdout) > limit:
        return reply | printed_limit(limit)
    if stopped == "value_limit":
        return reply | value_limit(limit)
    if kind == "stdio":
        return reply | stdio_outcome(bytes(buffers[last_r]), server.stopped())
    if exchange:
        return reply | with_exit(exchange.record(bytes(buffers[last_r])), server)
    return reply | function_outcome(record, server)


JUDGE_KEYS = ("setup", "source", "entry_point", "timeout_s", "output_bytes")
LIMIT_KEYS = ("timeout_s", "memory_mb", "output_bytes", "max_processes", "max_open_files",
              "max_file_bytes")  # fmt: skip


def main() -> None:
    prctl(PR_SET_DUMPABLE, 0)  # no same-uid process may read or write this one's memory
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as PID 1 (bwrap) no other signal can reach it
    server, judge = Server(), Judge()
    server.start()
    gc.freeze()  # forked judges' garbage collections then leave the worker's pages shared
    send({"ready": True, "python": sys.version.split()[0], "uid": os.getuid()})
    for line in sys.stdin.buffer:
        send(run_one(json.loads(line), server, judge))
    if judge.pid:  # reaped here, not left to an init that may never reap them
        judge.stop()
    server.connection.close()
    kill_descendants(0)


if __name__ == "__main__":
    main()
