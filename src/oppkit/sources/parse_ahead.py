"""Parse-ahead: a source's messages are parsed in worker processes, in order.

Not to be confused with :mod:`oppkit.sources.page_ahead` (the next upstream page is
fetched in a thread) or :mod:`oppkit.sync.reader_thread` (the runner reads a source in a
thread ahead of the writer); this one spreads the parsing itself over the cores.

Why: parsing MIME with the standard library is most of a mail sync's time (#14), and a
thread cannot run Python beside the writer (the GIL). The same parser, run in a few
small processes, gives the same records by construction.

How: a source yields *jobs*, a :class:`Parse` (the arguments of the parse function) or
anything else (a :class:`~oppkit.sources.records.Checkpoint`, a ``Skipped``), and
:func:`parse_ahead` yields the parse results and the other items in the order of the
jobs: a checkpoint still comes after every record before it. Jobs go to the workers in
chunks, round robin, with at most :data:`DEPTH` chunks in flight per worker, so memory
stays flat. The workers are plain ``python -c`` processes that import the parse
function's module and not the ``oppkit`` package's ``__init__`` (no pandas, no Kit):
about 30 MB each.

Faults and stops: a worker that dies (a crash in a C library, an OOM kill) costs no
other message: its chunk is parsed again one message at a time in a fresh worker, and a
message that kills that one too becomes ``crashed(args)`` (a Skipped, for mail).
Workers that cannot start at all (they say when they are ready) leave the parsing to
this process, with one warning. A worker ignores SIGINT (Ctrl-C reaches the whole
process group; the parent decides) and exits as soon as its input closes, so workers
end with the parent whichever way the parent ends, even ``kill -9``; a stop (Ctrl-C,
SIGTERM) kills them at once.

The first :data:`SERIAL_BELOW` jobs are parsed in this process as they come, and the
workers start only after them: a re-sync of 100 new messages starts no worker (its
start-up, ~0.2 s, would cost more than it saves) and a slow source's first records are
never held back waiting for more.
``OPPKIT_PARSE_WORKERS=0`` parses everything here; ``OPPKIT_PARSE_WORKERS=n`` sets the
number of workers (default: the number of CPUs, at most :data:`MAX_WORKERS`).

Example::

    jobs = (Parse((raw, where)) for raw, where in messages)
    for record in parse_ahead(jobs, "oppkit.sources.mail:parse_message", crashed):
        ...
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config import env_setting
from ..stops import stopping

log = logging.getLogger(__name__)

CHUNK = 64  # jobs per message to a worker
CHUNK_BYTES = 2**20  # ... or fewer, once their bytes reach this
DEPTH = 2  # chunks in flight per worker
SERIAL_BELOW = 300  # fewer jobs than this: parsed in this process
SERIAL_BYTES = 16 * 2**20  # ... unless their bytes reach this first
MAX_WORKERS = 4
_HEADER = 8  # bytes of a frame's length
_READY = "ready"  # a worker's first frame, once it has imported the parser


@dataclass(frozen=True, slots=True)
class Parse:
    """A job: ``parse(*args)``."""

    args: tuple


def workers_wanted() -> int:
    """OPPKIT_PARSE_WORKERS, else the CPUs this process may use (at most MAX_WORKERS)."""
    value = env_setting("PARSE_WORKERS")
    if value is not None and value.strip():
        try:
            return max(0, int(value))
        except ValueError:
            log.warning("OPPKIT_PARSE_WORKERS=%r is no number; parsing without workers", value)
            return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS) if cpus > 1 and sys.executable else 0


def parse_ahead(
    jobs: Iterable[Any],
    parser: str,
    crashed: Callable[[tuple], Any],
    workers: int | None = None,
) -> Iterator[Any]:
    """Yield ``parser(*job.args)`` for each :class:`Parse` job and every other job as it
    is, in the jobs' order; ``parser`` is ``"module:function"``."""
    iterator = iter(jobs)
    wanted = workers_wanted() if workers is None else workers
    try:
        # The first jobs are parsed here as they come (a small input, a re-sync, never
        # waits for more to arrive); the workers take over after SERIAL_BELOW of them.
        function = _function(parser)
        count = size = 0
        for job in iterator:
            if not isinstance(job, Parse):
                yield job
                continue
            yield function(*job.args)
            count, size = count + 1, size + _size(job)
            if wanted > 0 and (count >= SERIAL_BELOW or size >= SERIAL_BYTES):
                break
        else:
            return
        try:
            pool = _Pool(parser, wanted, crashed)
        except OSError as exc:  # no interpreter to start (an embedded Python, say)
            log.warning("no parse workers (%s); parsing in this process", exc)
            for job in iterator:
                yield function(*job.args) if isinstance(job, Parse) else job
            return
        with pool:
            yield from pool.run(iterator)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _size(job: Parse) -> int:
    return sum(len(a) for a in job.args if isinstance(a, bytes | str))


def _function(parser: str) -> Callable[..., Any]:
    module, _, name = parser.partition(":")
    return getattr(importlib.import_module(module), name)


# --- the parent's side ------------------------------------------------------------------


class _Crashed:
    """A job whose parse raised (the parent turns it into ``crashed(args)``)."""


class _Dead(Exception):
    """A worker ended (or sent garbage) before answering."""


class _Unstartable(Exception):
    """A worker ended before it was ready (it could not import the parser, say)."""


class _Worker:
    """One ``python -c`` worker process and its two pipes."""

    def __init__(self, parser: str) -> None:
        paths = [p for p in sys.path if p]
        level = logging.getLogger("oppkit").getEffectiveLevel()
        package = str(Path(__file__).resolve().parents[1])  # this very oppkit
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps([paths, package, parser, level])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.busy = 0  # chunks sent, not yet answered
        self.ready = False  # it said so, once it had imported the parser

    def send(self, chunk: list[tuple]) -> None:
        try:
            _write(self.proc.stdin, chunk)  # type: ignore[arg-type]
        except (OSError, ValueError):  # it died; found out when its answer is read
            pass
        self.busy += 1

    def receive(self) -> list[Any]:
        self.busy -= 1
        if not self.ready:
            try:
                self.ready = _read(self.proc.stdout) == _READY  # type: ignore[arg-type]
            except (OSError, EOFError, ValueError, pickle.UnpicklingError):
                pass
            if not self.ready:
                raise _Unstartable()
        try:
            results, logs = _read(self.proc.stdout)  # type: ignore[arg-type]
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise _Dead() from exc
        for record in logs:  # the worker's log lines, where the messages are
            logging.getLogger(record.name).handle(record)
        return results

    def close(self, now: bool) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()  # type: ignore[union-attr]
            except OSError:
                pass
        if now:
            self.proc.kill()
        try:
            self.proc.wait(timeout=0.2 if now else 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass


class _Pool:
    def __init__(self, parser: str, workers: int, crashed: Callable[[tuple], Any]) -> None:
        self.parser = parser
        self.crashed = crashed
        self.workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self.workers.append(_Worker(parser))
        except OSError:
            self.__exit__(OSError)
            raise
        self.sent = 0
        self.here: Callable[..., Any] | None = None  # set when workers cannot start

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, kind: type | None, *_: object) -> None:
        now = kind is not None or stopping()
        for worker in self.workers:
            worker.close(now)

    def run(self, jobs: Iterator[Any]) -> Iterator[Any]:
        # in the jobs' order: ("chunk", worker index, its jobs' args) or ("item", job)
        waiting: deque[tuple[str, Any, Any]] = deque()
        chunk: list[tuple] = []
        size = 0

        def submit() -> Iterator[Any]:
            nonlocal chunk, size
            slot = self.sent % len(self.workers)
            self.sent += 1
            while self.here is None and self.workers[slot].busy >= DEPTH:
                yield from self._answer(waiting)
            if self.here is None:
                self.workers[slot].send(chunk)
            waiting.append(("chunk", slot, chunk))
            chunk, size = [], 0

        failure: Exception | None = None
        while True:
            try:
                job = next(jobs)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - raised after the jobs before it
                failure = exc
                break
            if isinstance(job, Parse):
                chunk.append(job.args)
                size += _size(job)
                if len(chunk) >= CHUNK or size >= CHUNK_BYTES:
                    yield from submit()
            else:
                if chunk:
                    yield from submit()
                waiting.append(("item", None, job))
        if chunk:
            yield from submit()
        while waiting:
            yield from self._answer(waiting)
        if failure is not None:
            raise failure

    def _answer(self, waiting: deque) -> Iterator[Any]:
        """The oldest job's results (or item), from its worker."""
        kind, slot, value = waiting.popleft()
        if kind == "item":
            yield value
            return
        results = None
        if self.here is None:
            try:
                try:
                    results = self.workers[slot].receive()
                except _Dead:
                    results = self._after_death(slot, value, waiting)
            except _Unstartable:
                self._go_here()
        if results is None:  # the workers could not start: parsed here
            results = [self.here(*args) for args in value]  # type: ignore[misc]
        for args, result in zip(value, results, strict=True):
            yield self.crashed(args) if isinstance(result, _Crashed) else result

    def _go_here(self) -> None:
        """No worker can start (a broken interpreter, a parser it cannot import): the
        rest is parsed in this process, rather than a worker started per message."""
        log.warning("parse workers cannot start; parsing in this process")
        for worker in self.workers:
            worker.close(now=True)
        self.here = _function(self.parser)

    def _after_death(self, slot: int, chunk: list[tuple], waiting: deque) -> list[Any]:
        """A worker died with ``chunk`` (and maybe more) in hand: parse ``chunk`` one job
        at a time in a fresh worker, then hand it the dead one's other chunks."""
        if stopping():
            raise KeyboardInterrupt()  # the runner is stopping; no new workers
        self.workers[slot].close(now=True)
        log.warning("a parse worker ended (exit %s); its messages are parsed one by one",
                    self.workers[slot].proc.returncode)  # fmt: skip
        results: list[Any] = []
        worker = self.workers[slot] = _Worker(self.parser)
        for args in chunk:
            worker.send([args])
            try:
                results.extend(worker.receive())
            except _Dead:
                worker.close(now=True)
                results.append(self.crashed(args))
                worker = self.workers[slot] = _Worker(self.parser)
        for kind, other, value in waiting:
            if kind == "chunk" and other == slot:
                worker.send(value)
        return results


# --- frames ------------------------------------------------------------------------------


def _write(pipe: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(_HEADER, "little") + data)
    pipe.flush()


def _read_exactly(pipe: IO[bytes], n: int) -> bytes:
    data = pipe.read(n)
    if data is None or len(data) != n:
        raise EOFError("the pipe closed")
    return data


def _read(pipe: IO[bytes]) -> Any:
    n = int.from_bytes(_read_exactly(pipe, _HEADER), "little")
    return pickle.loads(_read_exactly(pipe, n))


# --- the worker's side -------------------------------------------------------------------

# Runs as ``python -c _BOOT '[sys.path, parser, log level]'``. The package ``oppkit`` is
# stood in for by a bare module with its path: its __init__ loads pandas and the Kit,
# which parsing needs neither of (a worker stays ~30 MB and starts in a fraction of a s).
_BOOT = """
import importlib.util, json, sys, types
paths, where, parser, level = json.loads(sys.argv[1])
sys.path[:0] = [p for p in paths if p not in sys.path]
package = types.ModuleType("oppkit")
package.__path__ = [where]
package.__spec__ = importlib.util.spec_from_loader("oppkit", None, is_package=True)
package.__spec__.submodule_search_locations = [where]
sys.modules["oppkit"] = package
from oppkit.sources.parse_ahead import serve
serve(parser, level)
"""


class _Collect(logging.Handler):
    """The worker's log records, sent back with the chunk's results."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = self.format(record).split("\n", 1)[-1]
            record.exc_info = None
        self.records.append(record)


def serve(parser: str, level: int) -> None:
    """A worker's loop: read chunks of jobs' args, answer each with their results."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print() cannot break the frames
    requests = os.fdopen(os.dup(0), "rb")
    collect = _Collect()
    root = logging.getLogger("oppkit")
    root.addHandler(collect)
    root.setLevel(level)
    root.propagate = False
    function = _function(parser)
    _write(answers, _READY)
    inbox: deque[list[tuple]] = deque()
    ready = threading.Condition()

    def read() -> None:  # the parent never waits to send: no deadlock on full pipes
        while True:
            try:
                chunk = _read(requests)
            except Exception:  # noqa: BLE001 - the parent closed the pipe, or died
                os._exit(0)
            with ready:
                inbox.append(chunk)
                ready.notify()

    threading.Thread(target=read, daemon=True).start()
    while True:
        with ready:
            while not inbox:
                ready.wait()
            chunk = inbox.popleft()
        results = []
        for args in chunk:
            try:
                results.append(function(*args))
            except Exception as exc:  # noqa: BLE001 - the parser's contract is broken
                log.error("parse failed: %s: %s", type(exc).__name__, exc)
                results.append(_Crashed())
        logs, collect.records = collect.records, []
        try:
            _write(answers, (results, logs))
        except (OSError, ValueError):
            os._exit(0)
