"""Writer processes for the throughput benchmark: each one pyiceberg client appending to one table.

Why processes, not threads: a pyiceberg append is mostly Python CPU work (Avro manifests, the
manifest list, metadata JSON), so N writer threads in one interpreter queue on its GIL and the
client, not the catalog, sets the pace. Each writer here is its own process with its own
``RestCatalog``, one append at a time, default client settings (so pyiceberg's own commit retries
on 409). The pool is started once and reused for every system and writer count, so every system
is driven by the very same clients.

A window: every writer loads the table and reports ready; then all start at one shared instant
(``time.monotonic`` is system-wide on Linux) and append until the window closes or they have
made ``max_appends`` appends, the last append in flight being allowed to finish. Each success
is stamped with its completion time, so a rate can be taken over a steady stretch of the window
(``Window.completed_between``): not over the ramp-up, when no writer has finished its first
append yet, nor over the drain, when writers stop starting new ones -- both last about one
append latency, seconds at 16 writers, and would make high writer counts look slower.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.rows import one_row
from bench.targets import CatalogTarget

#: Imported once in the fork server, so each writer starts without paying for them again.
_PRELOAD = ["pyarrow", "pyiceberg.catalog.rest", "pyiceberg.io.pyarrow", "pyiceberg.table", "bench.writers"]
#: Kept per writer: enough to say why appends failed without shipping thousands of tracebacks.
_ERROR_SAMPLES = 3


@dataclass(frozen=True)
class AppendTask:
    """One writer's share of a window: which catalog and table, and when to stop."""

    target: CatalogTarget
    table: str  # "namespace.name"
    writer: int  # distinguishes the rows each writer appends
    seconds: float | None = None
    max_appends: int | None = None


@dataclass
class WriterResult:
    """What one writer saw in a window (times from ``time.monotonic``)."""

    latencies: list[float] = field(default_factory=list)  # successful appends, whole ``table.append``
    completed: list[float] = field(default_factory=list)  # when each of them finished
    failures: int = 0  # appends that raised after pyiceberg's own retries
    errors: list[str] = field(default_factory=list)
    commit_calls: int = 0  # REST commitTable calls: one per attempt, retries included
    conflicts: int = 0  # of which the catalog refused with 409 (CommitFailedException)
    commit_latencies: list[float] = field(default_factory=list)  # the commitTable calls that succeeded
    cpu_seconds: float = 0.0  # this writer's own CPU in the window: is the client the bottleneck?
    finished_at: float = 0.0


@dataclass
class Window:
    start: float
    results: list[WriterResult]

    @property
    def elapsed(self) -> float:
        return max(r.finished_at for r in self.results) - self.start

    def completed_between(self, begin: float, end: float) -> int:
        """Successful appends that finished ``begin``..``end`` seconds after the start."""
        lo, hi = self.start + begin, self.start + end
        return sum(1 for r in self.results for t in r.completed if lo <= t < hi)


class _Writer:
    """One pyiceberg client: its own catalog, the table loaded once, then append after append on the
    metadata its last commit returned (as any Iceberg client does)."""

    def __init__(self, task: AppendTask) -> None:
        from pyiceberg.exceptions import CommitFailedException

        self.task = task
        self.result = WriterResult()
        self.catalog = task.target.catalog()
        self.table = self.catalog.load_table(task.table)
        commit_table = self.catalog.commit_table

        def counted_commit_table(*args: Any, **kwargs: Any) -> Any:  # Table._do_commit calls catalog.commit_table
            self.result.commit_calls += 1
            began = time.monotonic()
            try:
                response = commit_table(*args, **kwargs)
            except CommitFailedException:
                self.result.conflicts += 1
                raise
            self.result.commit_latencies.append(time.monotonic() - began)
            return response

        self.catalog.commit_table = counted_commit_table

    def run(self, start_at: float) -> WriterResult:
        task, result = self.task, self.result
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu_start = time.process_time()
        stop_at = start_at + task.seconds if task.seconds is not None else math.inf
        limit = task.max_appends if task.max_appends is not None else math.inf
        made = 0
        while made < limit and time.monotonic() < stop_at:
            began = time.monotonic()
            try:
                self.table.append(one_row(task.writer * 1_000_000 + made))
                done = time.monotonic()
                result.latencies.append(done - began)
                result.completed.append(done)
            except Exception as exc:  # noqa: BLE001 - counted: a failed commit is a result here
                result.failures += 1
                if len(result.errors) < _ERROR_SAMPLES:
                    result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                self._refresh()
            made += 1
        result.finished_at = time.monotonic()
        result.cpu_seconds = time.process_time() - cpu_start
        return result

    def _refresh(self) -> None:
        """After a failure, carry on from the table's current state, as a client retrying later would."""
        try:
            self.table = self.table.refresh()
        except Exception:  # noqa: BLE001 - the next append reports the trouble
            pass


def _serve(conn: Connection) -> None:
    """A writer process: task -> ready -> start instant -> result, until told to stop or orphaned."""
    warnings.filterwarnings("ignore")
    logging.getLogger("pyiceberg").setLevel(logging.ERROR)  # "retrying (1/4)" x thousands on stderr
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the benchmark is gone
        if task is None:
            return
        try:
            writer = _Writer(task)
        except Exception as exc:  # noqa: BLE001 - reported to the pool
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:600]))
            continue
        conn.send(("ready", None))
        start_at = conn.recv()
        if start_at is not None:
            conn.send(("done", writer.run(start_at)))


class WriterPool:
    """``size`` writer processes, reused window after window. Use as a context manager."""

    def __init__(self, size: int, prepare_timeout: float = 120.0) -> None:
        self.size = size
        self.prepare_timeout = prepare_timeout
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._workers: list[tuple[multiprocessing.Process, Connection]] = []
        self._start()

    def _start(self) -> None:
        for i in range(self.size):
            ours, theirs = self._ctx.Pipe()
            process = self._ctx.Process(target=_serve, args=(theirs,), name=f"bench-writer-{i}", daemon=True)
            process.start()
            theirs.close()
            self._workers.append((process, ours))

    def run(self, tasks: list[AppendTask], run_timeout: float, at_start: Callable[[], None] | None = None) -> Window:
        """Run one window with ``len(tasks)`` writers; a writer that cannot start fails the window.

        ``at_start`` is called once every writer is ready, just before they are let go.

        On a timeout or a dead writer the pool is restarted, so the next window starts clean.
        """
        if len(tasks) > self.size:
            raise ValueError(f"{len(tasks)} writers, pool of {self.size}")
        conns = [conn for _, conn in self._workers[: len(tasks)]]
        try:
            for conn, task in zip(conns, tasks):
                conn.send(task)
            replies = [self._recv(conn, self.prepare_timeout) for conn in conns]
            errors = [detail for kind, detail in replies if kind == "error"]
            if not errors and at_start is not None:
                at_start()
            start_at = None if errors else time.monotonic() + 0.05
            for conn, (kind, _) in zip(conns, replies):
                if kind == "ready":
                    conn.send(start_at)
            if errors:
                raise RuntimeError(f"{len(errors)} of {len(tasks)} writers could not start: {errors[0]}")
            return Window(start_at, [self._recv(conn, run_timeout)[1] for conn in conns])
        except (TimeoutError, EOFError, OSError):
            self._restart()
            raise

    def _recv(self, conn: Connection, timeout: float) -> tuple[str, Any]:
        if not conn.poll(timeout):
            raise TimeoutError(f"a writer did not answer in {timeout:.0f}s")
        return conn.recv()

    def _restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        for process, conn in self._workers:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for process, conn in self._workers:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            conn.close()
        self._workers = []

    def __enter__(self) -> WriterPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
