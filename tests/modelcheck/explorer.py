"""Depth-first search over the schedules of a scenario, each run from scratch (stateless, CHESS-style).

A run starts every process on a fresh copy of the scenario's warehouse and, at each scheduling
point, picks one ``Choice``: which waiting process moves, and whether it moves or a fault hits it
there (see ``scheduled_store``), or the clock jumps past every protocol timeout. A new schedule
replays the previous one up to its deepest choice point with an untried option, takes that
option, and continues with default choices. Bounds keep the search finite and fast:

* preemptions -- switching away from a process that could go on (the default choice is to let
  the last process continue); a process that backed off may be switched away from for free;
* faults -- how many injected crashes or failed requests a schedule may hold;
* clock jumps;
* deviations -- all three together.

Operations a scenario declares commutative (reads and creates of freshly named immutable
objects) are no scheduling points at all; the scheduler verifies that claim in every run.

Every state reached for the first time is checked by the scenario's observer (on a copy, so its
reads cannot perturb the run); after each complete run the warehouse is recovered (clock past
all timeouts, a fresh table store reading everything) and the scenario's invariants are checked.
The first violation stops the search and carries the schedule that produced it.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from itertools import count
from typing import Callable, Literal

from iceshelf.tables.errors import CommitStateUnknownException
from iceshelf.tables.objectstore import ObjectStore
from iceshelf.tables.objectstore.faults import InjectedFault, SimulatedCrash
from iceshelf.tables.objectstore.memory import MemoryStore
from iceshelf.tables.tablestore import TableStore
from tests.modelcheck.invariants import recover
from tests.modelcheck.scheduled_store import Action, Op, ScheduledStore, Scheduler
from tests.modelcheck.world import World

#: Retries of the commit paths: enough to win any race of a few processes, few enough that a
#: process waiting out a crashed one gives up after a handful of scheduling points.
COMMIT_ATTEMPTS = 4


def fork(store: MemoryStore) -> MemoryStore:
    """An independent copy of the store's objects, issuing etags past every etag it holds.

    A copy starting its etag counter afresh would re-issue an etag a key once had, and a stale
    compare-and-swap against it would wrongly win; a shared counter would make etags (which
    the traces show and replays compare) depend on earlier runs. Relies on ``MemoryStore``'s
    etags being ``v<n>``.
    """
    copy = MemoryStore(store.root_uri)
    with store._lock:
        copy._objects = dict(store._objects)
    copy._versions = count(1 + max((int(etag[1:]) for _, etag, _ in copy._objects.values()), default=0))
    return copy


def default_tables(store: ObjectStore) -> TableStore:
    return TableStore("modelcheck", store, commit_attempts=COMMIT_ATTEMPTS)


@dataclass(frozen=True)
class Outcome:
    """What a process's caller learned: a value (acknowledged) or an error."""

    value: object = None
    error: BaseException | None = None

    @property
    def acked(self) -> bool:
        return self.error is None

    @property
    def unknown(self) -> bool:
        """The process died, or was told the outcome is unknown: either way is allowed."""
        return isinstance(self.error, (SimulatedCrash, InjectedFault, CommitStateUnknownException))

    def __str__(self) -> str:
        if self.error is None:
            return "acknowledged"
        return f"{type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class Process:
    name: str
    body: Callable[[TableStore], object]
    #: The errors that are clean refusals of this operation (nothing of it may be visible).
    refusals: tuple[type[Exception], ...] = ()
    #: Whether faults are injected into this process: off for a bystander whose own crash
    #: would add schedules but nothing to check (a reader, say).
    faulty: bool = True


@dataclass(frozen=True)
class Bounds:
    preemptions: int = 2
    faults: int = 1
    #: ``crash`` and ``lost`` are offered before writes only: a crash before a read leaves the
    #: same store as one before the process's next write (reads change nothing), and a lost
    #: read response is a failed read.
    fault_kinds: tuple[Action, ...] = ("crash",)
    clock_jumps: int = 0
    #: All of the above together: how far a schedule may stray from "each process runs to the
    #: end in turn" (iterative context bounding: most bugs need very few deviations).
    deviations: int = 2
    #: A guard, not a bound: a search that would exceed it fails instead of running for ages.
    max_schedules: int = 20_000


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The warehouse every run starts from (never modified: each run works on a fork).
    initial: MemoryStore
    processes: tuple[Process, ...]
    #: After recovery: raise ``AssertionError`` if an invariant is broken.
    check: Callable[[TableStore, dict[str, Outcome]], None]
    #: At every state: a fresh table store over a copy of the warehouse, and a per-run memo for
    #: what is immutable within a run (parsed metadata files by location).
    observe: Callable[[TableStore, dict], None] | None = None
    bounds: Bounds = Bounds()
    tables: Callable[[ObjectStore], TableStore] = default_tables
    #: Operations that need no scheduling point (see ``Scheduler.turn``); verified in every run.
    invisible: Callable[[Op], bool] = lambda op: False
    wrap: Callable[[ObjectStore, Scheduler, int], ObjectStore] = ScheduledStore


@dataclass(frozen=True)
class Choice:
    pid: int | None  # None: the clock jumps
    action: Action | Literal["jump"]


@dataclass(frozen=True)
class Cost:
    preemptions: int = 0
    faults: int = 0
    jumps: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.preemptions + other.preemptions, self.faults + other.faults, self.jumps + other.jumps)

    def within(self, bounds: Bounds) -> bool:
        return (
            self.preemptions <= bounds.preemptions
            and self.faults <= bounds.faults
            and self.jumps <= bounds.clock_jumps
            and self.preemptions + self.faults + self.jumps <= bounds.deviations
        )


@dataclass
class Node:
    """One scheduling point of a run: what was waiting, what could be chosen, what was."""

    waiting: dict[int, Op]
    options: list[Choice]
    costs: list[Cost]
    spent: Cost
    chosen: int = 0

    def first_option(self, bounds: Bounds, after: int = -1) -> int | None:
        """The first option after ``after`` that the bounds allow."""
        return next((i for i in range(after + 1, len(self.options)) if (self.spent + self.costs[i]).within(bounds)), None)


@dataclass(frozen=True)
class Violation:
    scenario: str
    message: str
    trace: tuple[str, ...]
    outcomes: dict[str, str]

    def __str__(self) -> str:
        steps = "\n".join(f"  {i:3d}. {step}" for i, step in enumerate(self.trace, 1))
        ends = "\n".join(f"  {name}: {outcome}" for name, outcome in self.outcomes.items())
        return f"{self.scenario}: {self.message}\nschedule:\n{steps}\noutcomes:\n{ends}"


@dataclass
class Report:
    scenario: str
    #: Complete schedules, each checked after recovery.
    schedules: int = 0
    #: Scheduling points reached for the first time (nodes of the schedule tree).
    states: int = 0
    #: Of those, the ones the observer checked: every new point the store or the clock changed at.
    observed: int = 0
    #: Schedules holding an injected fault (crash or failed request), each followed by recovery.
    fault_schedules: int = 0
    seconds: float = 0.0
    violation: Violation | None = None

    def __str__(self) -> str:
        found = "no violation" if self.violation is None else "VIOLATION"
        return (
            f"{self.scenario}: {self.schedules} schedules, {self.states} states ({self.observed} observed), "
            f"{self.fault_schedules} with a fault, {self.seconds:.1f}s, {found}"
        )


class Nondeterminism(AssertionError):
    """A replayed prefix reached a different state: the run depends on something but the schedule."""


def explore(scenario: Scenario) -> Report:
    """Every schedule of ``scenario`` within its bounds, until the first violation."""
    report = Report(scenario.name)
    started = time.perf_counter()
    world = World()
    previous: list[Node] = []
    replay: list[int] = []
    with world.installed():
        while True:
            run = _Run(scenario, world, previous, replay)
            report.violation = run.execute()
            report.schedules += 1
            report.states += run.new_states
            report.observed += run.observed
            report.fault_schedules += run.spent.faults > 0
            if report.violation is not None:
                break
            if report.schedules >= scenario.bounds.max_schedules:
                raise AssertionError(f"{scenario.name}: more than {scenario.bounds.max_schedules} schedules; tighten its bounds")
            previous = run.path
            replay = _next_replay(previous, scenario.bounds)
            if replay is None:
                break
    report.seconds = time.perf_counter() - started
    return report


def _next_replay(path: list[Node], bounds: Bounds) -> list[int] | None:
    """The choices of the next schedule: backtrack to the deepest point with an untried option."""
    for depth in range(len(path) - 1, -1, -1):
        option = path[depth].first_option(bounds, after=path[depth].chosen)
        if option is not None:
            return [node.chosen for node in path[:depth]] + [option]
    return None


class _Run:
    def __init__(self, scenario: Scenario, world: World, previous: list[Node], replay: list[int]) -> None:
        self.scenario = scenario
        self.world = world
        self.previous = previous
        self.replay = replay
        self.store = fork(scenario.initial)
        self.scheduler = Scheduler(self._decide, scenario.invisible, self._note)
        self.outcomes: dict[str, Outcome] = {}
        self.path: list[Node] = []
        self.trace: list[str] = []
        self.spent = Cost()
        self.new_states = 0
        self.memo: dict = {}
        #: Whether the store (or the clock) changed since the last observed state: a read changes
        #: nothing, so the state after it needs no second look.
        self.changed = True
        self.observed = 0
        #: Set at the first violation (or harness error): the run is then wound down by crashing
        #: every process left, and nothing after it is part of the schedule.
        self.violation: Violation | None = None
        self.error: BaseException | None = None

    def execute(self) -> Violation | None:
        self.world.reset(self.scheduler)
        bodies = []
        for pid, process in enumerate(self.scenario.processes):
            tables = self.scenario.tables(self.scenario.wrap(self.store, self.scheduler, pid))
            bodies.append((process.name, lambda p=process, t=tables: self._body(p, t)))
        try:
            self.scheduler.run(bodies)
        finally:
            self.world.detach()
        if self.error is not None:
            raise self.error
        if self.scheduler.unsound is not None:
            raise AssertionError(f"{self.scenario.name}: the invisible-operation claim is wrong: {self.scheduler.unsound}")
        return self.violation or self._finish()

    def _body(self, process: Process, tables: TableStore) -> None:
        try:
            self.outcomes[process.name] = Outcome(value=process.body(tables))
        except BaseException as err:  # noqa: BLE001 - every outcome is data for the checks
            self.outcomes[process.name] = Outcome(error=err)

    def _decide(self, waiting: dict[int, Op], last: int | None) -> tuple[int, Action]:
        """Called by the process holding the baton, at every scheduling point."""
        try:
            while self.violation is None and self.error is None:
                choice = self._choose(waiting, last)
                if choice.pid is not None:
                    return choice.pid, choice.action
                self.world.jump()
        except BaseException as err:  # noqa: BLE001 - re-raised by ``execute`` in the main thread
            self.error = err
        return next(iter(waiting)), "crash"  # winding down: crash whoever is left

    def _choose(self, waiting: dict[int, Op], last: int | None) -> Choice:
        depth = len(self.path)
        options, costs = self._options(waiting, last)
        node = Node(waiting, options, costs, self.spent)
        if depth < len(self.replay):
            self._check_replay(depth, waiting)
            self.changed = False  # this state was observed in an earlier run (or equals one that was)
            node.chosen = self.replay[depth]
        else:
            self.new_states += 1
            self.violation = self._observe()
            if self.violation is not None:
                return Choice(next(iter(waiting)), "crash")
        self.path.append(node)
        choice = options[node.chosen]
        self.spent = self.spent + costs[node.chosen]
        self.trace.append(self._describe(choice, waiting))
        self.changed |= choice.pid is None or (choice.action in ("step", "lost") and waiting[choice.pid].writes)
        return choice

    def _options(self, waiting: dict[int, Op], last: int | None) -> tuple[list[Choice], list[Cost]]:
        """Every choice here and its cost; the first one (continue the last process) is free."""
        bounds = self.scenario.bounds
        polite = self.scheduler.yielded(last)
        others = [pid for pid in waiting if pid != last]
        order = ([last] if last in waiting and not polite else []) + others + ([last] if last in waiting and polite else [])
        options: list[Choice] = []
        costs: list[Cost] = []
        for pid in order:
            # Switching away from a process that could go on is a preemption; so is making a
            # process that backed off go again before the others.
            preempts = int((pid != last and last in waiting and not polite) or (pid == last and polite and bool(others)))
            faults = bounds.fault_kinds if self.scenario.processes[pid].faulty else ()
            kinds = ["step", *(k for k in faults if k == "fail" or waiting[pid].writes)]
            for kind in kinds:
                options.append(Choice(pid, kind))
                costs.append(Cost(preemptions=preempts, faults=int(kind != "step")))
        if bounds.clock_jumps:
            options.append(Choice(None, "jump"))
            costs.append(Cost(jumps=1))
        return options, costs

    def _note(self, pid: int, op: Op) -> None:
        self.trace.append(f"{self.scenario.processes[pid].name}: {op} (no scheduling point)")

    def _check_replay(self, depth: int, waiting: dict[int, Op]) -> None:
        if waiting != self.previous[depth].waiting:
            raise Nondeterminism(
                f"{self.scenario.name}: replay diverged at step {depth + 1}: "
                f"{self.previous[depth].waiting} then, {waiting} now\n" + "\n".join(self.trace)
            )

    def _describe(self, choice: Choice, waiting: dict[int, Op]) -> str:
        if choice.pid is None:
            return "-- the clock jumps past every protocol timeout --"
        name = self.scenario.processes[choice.pid].name
        verb = {"step": "", "crash": "CRASHES before ", "fail": "FAILS (injected) ", "lost": "LOSES THE RESPONSE of "}
        return f"{name}: {verb[choice.action]}{waiting[choice.pid]}"

    def _observe(self) -> Violation | None:
        if self.scenario.observe is None or not self.changed:
            return None
        self.changed = False
        self.observed += 1
        with self.world.aside():
            return self._guard("observer at this state", lambda: self.scenario.observe(TableStore("observer", fork(self.store)), self.memo))

    def _finish(self) -> Violation | None:
        """All processes ended: check the final state, recover, check the invariants."""
        if (violation := self._observe()) is not None:
            return violation
        for process in self.scenario.processes:
            outcome = self.outcomes[process.name]
            if outcome.error is not None and not outcome.unknown and not isinstance(outcome.error, process.refusals):
                trace = "".join(traceback.format_exception(outcome.error))
                return self._violation(f"{process.name} raised an unexpected error:\n{trace}")
        self.world.jump()
        return self._guard("after recovery", lambda: self.scenario.check(recover(self.store), self.outcomes))

    def _guard(self, where: str, check: Callable[[], None]) -> Violation | None:
        try:
            check()
        except AssertionError as err:
            return self._violation(f"{where}: {err}")
        except Exception as err:  # a pointer naming a missing file surfaces as a load error
            return self._violation(f"{where}: {''.join(traceback.format_exception(err))}")
        return None

    def _violation(self, message: str) -> Violation:
        outcomes = {p.name: str(self.outcomes.get(p.name, "still running")) for p in self.scenario.processes}
        return Violation(self.scenario.name, message, tuple(self.trace), outcomes)


