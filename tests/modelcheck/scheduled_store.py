"""Every object-store operation of a logical process becomes a scheduling point.

Each process of a scenario runs the real catalog code in its own thread, over its own
``ScheduledStore`` view of one shared store. Before every operation the process stops and
waits for the controller's decision, and only one process runs between two scheduling points:
a run is therefore fully determined by the sequence of decisions, which is what lets the
explorer replay a prefix and branch. The operations between two points are local computation,
invisible to the other processes, so nothing is lost by not interleaving them.

A decision is an ``Action`` for the chosen process: ``step`` performs the operation; ``crash``
kills the process right before it (``SimulatedCrash``; a dead process performs no further
operation, as a killed server would not -- its cleanup handlers get nowhere); ``fail`` makes the
request fail before it reaches the store and ``lost`` performs it and loses the response (both an
``InjectedFault``, what a flaky S3 does).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Literal, TypeVar

from iceshelf.tables.objectstore import Create, GetResult, ObjectMeta, ObjectStore, Overwrite, PutMode, Update
from iceshelf.tables.objectstore.faults import InjectedFault, SimulatedCrash

Action = Literal["step", "crash", "fail", "lost"]
T = TypeVar("T")

#: How long a process may compute between two scheduling points, or wait for its turn, before
#: the run is declared hung (a harness or protocol bug, never a legitimate schedule).
HANG_S = 30.0


@dataclass(frozen=True)
class Op:
    """The operation a process is about to perform: what the trace of a schedule shows."""

    kind: str
    key: str
    mode: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.key}" + (f" ({self.mode})" if self.mode else "")

    @property
    def writes(self) -> bool:
        return self.kind in ("put", "delete")

    def touches(self, key: str) -> bool:
        return key.startswith(self.key) if self.kind == "list" else key == self.key


def describe_mode(mode: PutMode) -> str:
    match mode:
        case Create():
            return "create"
        case Update(etag=etag):
            return f"if-match {etag}"
        case Overwrite():
            return "overwrite"
    raise TypeError(mode)


#: Decides, at a scheduling point, which waiting process goes next and how; given the waiting
#: processes and the one that just ran (``None`` at the start).
Decide = Callable[[dict[int, Op], int | None], tuple[int, Action]]


class Scheduler:
    """A baton passed between process threads: only its holder runs.

    A process reaching a scheduling point asks ``decide`` -- in its own thread, while every other
    process is parked -- who goes next. If the answer is itself (the usual case: no preemption),
    it just goes on; otherwise it wakes the chosen one and parks. So a step costs a thread switch
    only when the schedule actually switches. Only the baton holder touches the scheduler's
    state; the semaphores that pass the baton order those accesses.
    """

    def __init__(
        self,
        decide: Decide,
        invisible: Callable[[Op], bool] = lambda op: False,
        note: Callable[[int, Op], None] = lambda pid, op: None,
    ) -> None:
        self.decide = decide
        #: Operations that are no scheduling point because they commute with everything the
        #: other processes do (a scenario's claim, checked: see ``turn``); ``note`` hears of each.
        self.invisible = invisible
        self.note = note
        #: Each process's invisible operations since its last visible one (all of them, once it
        #: has ended): no other process may perform a conflicting operation meanwhile.
        self._windows: dict[int, list[Op]] = {}
        #: Set when the claim failed in this run.
        self.unsound: str | None = None
        self._waiting: dict[int, Op] = {}
        self._actions: dict[int, Action] = {}
        self._wake: dict[int, threading.Semaphore] = {}
        self._dead: set[int] = set()
        #: Processes that backed off since their last turn: they wait for others, so switching
        #: away from them is no preemption (CHESS's fairness: a spinning loop cannot starve).
        self._yielded: set[int] = set()
        self._holder: int | None = None
        self._spawning = True
        self._controller = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []

    # -- the process side ---------------------------------------------------------------------

    def turn(self, pid: int, op: Op) -> Action:
        """Wait until ``pid`` may perform ``op``; return how (a crash raises here).

        An invisible operation goes at once. Running it right after the process's previous
        operation is equivalent to running it anywhere up to the process's next visible one,
        provided no other process performs a conflicting operation in between -- which is
        checked: any schedule that would put one before it, the search also runs with that
        operation placed after it, in the window, where it is caught.
        """
        if pid in self._dead:
            raise SimulatedCrash(f"dead process attempted {op}")
        if self.invisible(op):
            self._check_windows(pid, op)
            self._windows.setdefault(pid, []).append(op)
            self.note(pid, op)
            return "step"
        self._waiting[pid] = op
        if self._spawning:
            self._controller.release()
            self._park(pid)
        elif self._hand_over(pid) != pid:
            self._park(pid)
        action = self._actions.pop(pid)
        self._windows.pop(pid, None)  # a scheduling point: this process's window closes
        if action == "crash":
            self._dead.add(pid)
            raise SimulatedCrash(f"crash before {op}")
        if action != "fail":
            self._check_windows(pid, op)
        return action

    def backed_off(self) -> None:
        """The running process is backing off before a retry."""
        if self._holder is not None:
            self._yielded.add(self._holder)

    def yielded(self, pid: int | None) -> bool:
        return pid in self._yielded

    # -- the controller side ------------------------------------------------------------------

    def run(self, bodies: list[tuple[str, Callable[[], None]]]) -> None:
        """Start every process (each runs to its first scheduling point), then let the schedule go."""
        for pid, (name, body) in enumerate(bodies):
            self._wake[pid] = threading.Semaphore(0)
            self._holder = pid
            thread = threading.Thread(target=self._main, args=(pid, body), name=f"mc-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
            self._acquire(self._controller)
        self._spawning = False
        if self._waiting:
            self._hand_over(None)
            self._acquire(self._controller)
        for thread in self._threads:
            thread.join(HANG_S)

    # -- the baton ------------------------------------------------------------------------------

    def _main(self, pid: int, body: Callable[[], None]) -> None:
        try:
            body()
        finally:
            if self._spawning or not self._waiting:
                self._controller.release()  # spawned, or the last one out: the run is over
            else:
                self._hand_over(pid)

    def _check_windows(self, pid: int, op: Op) -> None:
        for other, window in self._windows.items():
            for quiet in window:
                if other != pid and (quiet.writes or op.writes) and op.touches(quiet.key):
                    self.unsound = self.unsound or f"{op} by process {pid} conflicts with invisible {quiet} by process {other}"

    def _hand_over(self, last: int | None) -> int:
        pid, action = self.decide(dict(sorted(self._waiting.items())), last)
        del self._waiting[pid]
        self._actions[pid] = action
        self._yielded.discard(pid)
        self._holder = pid
        if pid != last:
            self._wake[pid].release()
        return pid

    def _park(self, pid: int) -> None:
        self._acquire(self._wake[pid])

    @staticmethod
    def _acquire(semaphore: threading.Semaphore) -> None:
        if not semaphore.acquire(timeout=HANG_S):
            raise TimeoutError(f"no scheduling point reached in {HANG_S}s: a hung process")


class ScheduledStore(ObjectStore):
    """One process's view of the shared store: each operation waits for its turn first."""

    def __init__(self, inner: ObjectStore, scheduler: Scheduler, pid: int) -> None:
        self.inner = inner
        self.scheduler = scheduler
        self.pid = pid
        self.root_uri = inner.root_uri

    def _op(self, op: Op, run: Callable[[], T]) -> T:
        action = self.scheduler.turn(self.pid, op)
        if action == "fail":
            raise InjectedFault(f"injected failure of {op}")
        result = run()
        if action == "lost":
            raise InjectedFault(f"response lost after {op}")
        return result

    def get(self, key: str) -> GetResult:
        return self._op(Op("get", key), lambda: self.inner.get(key))

    def head(self, key: str) -> ObjectMeta:
        return self._op(Op("head", key), lambda: self.inner.head(key))

    def put(self, key: str, data: bytes, mode: PutMode = Overwrite()) -> str:
        return self._op(Op("put", key, describe_mode(mode)), lambda: self.inner.put(key, data, mode))

    def delete(self, key: str) -> None:
        return self._op(Op("delete", key), lambda: self.inner.delete(key))

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        after = f"after {start_after}" if start_after else ""
        return self._op(Op("list", prefix, after), lambda: self.inner.list_page(prefix, start_after, limit))
