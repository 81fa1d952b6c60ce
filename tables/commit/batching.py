"""Group commit: requests for one key that arrive while one is in flight are applied together.

A classic leader/follower queue. The first request for a key leads: it takes every request
queued for that key so far, runs them as one batch, and hands leadership to the next queued
request, if any, before returning. Followers sleep until their batch is done. So N concurrent
commits to a table cost about one metadata write and one pointer swap per batch, instead of N
writers racing the same compare-and-swap and N-1 of them retrying.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class Ticket(Generic[T, R]):
    """One request in a batch: the leader calls ``resolve`` or ``fail`` on each."""

    request: T
    result: R | None = None
    error: BaseException | None = None
    finished: bool = False
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)

    def resolve(self, result: R) -> None:
        self.result, self.finished = result, True
        self._wake.set()

    def fail(self, error: BaseException) -> None:
        self.error, self.finished = error, True
        self._wake.set()


@dataclass
class _Queue:
    tickets: list = field(default_factory=list)
    leading: bool = False


class Batcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[list[Ticket[T, R]]], None]) -> None:
        self._run_batch = run_batch
        self._queues: dict[Hashable, _Queue] = {}
        self._lock = threading.Lock()

    def submit(self, key: Hashable, request: T) -> R:
        ticket: Ticket[T, R] = Ticket(request)
        with self._lock:
            queue = self._queues.setdefault(key, _Queue())
            queue.tickets.append(ticket)
            if not queue.leading:
                queue.leading = True
                ticket._wake.set()  # nobody leads: this request does
        while not ticket.finished:
            ticket._wake.wait()
            ticket._wake.clear()
            if not ticket.finished:
                self._lead(key, queue)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def run_alone(self, request: T) -> R:
        """The same batch function for one request, with no queue (group commit switched off)."""
        ticket: Ticket[T, R] = Ticket(request)
        self._run_batch([ticket])
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _lead(self, key: Hashable, queue: _Queue) -> None:
        with self._lock:
            batch, queue.tickets = queue.tickets, []
        try:
            self._run_batch(batch)
        except BaseException as err:  # the leader died: its followers must not wait forever
            for ticket in batch:
                if not ticket.finished:
                    ticket.fail(err)
            raise
        finally:
            with self._lock:
                if queue.tickets:
                    queue.tickets[0]._wake.set()
                else:
                    queue.leading = False
                    del self._queues[key]
