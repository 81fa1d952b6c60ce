"""The environment of a run, made deterministic: virtual time, counted uuids, backoff as a yield.

A schedule must replay exactly, so nothing the code under test does may depend on anything but
the schedule. Three things would: the wall clock (protocol timeouts), ``uuid4`` (the names of
metadata files and transaction records, which appear in the operations the explorer compares
on replay), and ``backoff``, which sleeps. Inside ``World.installed()`` the clock stands still
unless the explorer jumps it past every protocol timeout -- the way a process that stalls for
a minute sees the world -- uuids count up from zero per run, and a backoff just tells the
scheduler that its process is waiting for the others.
"""

from __future__ import annotations

import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from itertools import count
from typing import Iterator
from unittest import mock

import iceshelf.tables.clock
import iceshelf.tables.retry
from tests.modelcheck.scheduled_store import Scheduler

#: Longer than every protocol timeout (rename, transaction, namespace-drop mark: 30 s each).
JUMP_MS = 10 * 60_000


class World:
    def __init__(self) -> None:
        self.start_ms = int(time.time() * 1000)
        self.now = self.start_ms
        self._uuids = count()
        self.scheduler: Scheduler | None = None

    def reset(self, scheduler: Scheduler) -> None:
        """A fresh run: the clock back at the start, uuids from zero, backoffs told to ``scheduler``."""
        self.now = self.start_ms
        self._uuids = count()
        self.scheduler = scheduler

    def detach(self) -> None:
        """The run's processes are gone: recovery's backoffs (if any) are plain no-ops."""
        self.scheduler = None

    def jump(self) -> None:
        self.now += JUMP_MS

    def now_ms(self) -> int:
        return self.now

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=next(self._uuids), version=4)

    def backoff(self, attempt: int) -> None:
        if self.scheduler is not None:
            self.scheduler.backed_off()

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Work the schedule must not see (an observer's reads): keep the run's uuid sequence intact."""
        saved = self._uuids
        self._uuids = count(1 << 64)
        try:
            yield
        finally:
            self._uuids = saved

    @contextmanager
    def installed(self) -> Iterator["World"]:
        """Patch the seams: ``iceshelf.tables.clock.now_ms``, ``uuid.uuid4``, and every imported ``backoff``."""
        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(iceshelf.tables.clock, "now_ms", self.now_ms))
            stack.enter_context(mock.patch.object(uuid, "uuid4", self.uuid4))
            # Modules import ``backoff`` by name, so each module's binding is patched -- found by
            # identity, so a module the lead adds later is covered without editing this list.
            original = iceshelf.tables.retry.backoff
            for module in [m for name, m in sys.modules.items() if name.startswith("tables.") and m is not None]:
                if getattr(module, "backoff", None) is original:
                    stack.enter_context(mock.patch.object(module, "backoff", self.backoff))
            yield self
