"""Retrying compare-and-swap loops: jittered backoff, and patience measured in time as well as tries.

Losing a race to other writers again and again is not a conflict -- each retry re-reads and
re-validates on the new head -- so a busy table should cost time, not a spurious 409. Every loop
that retries a lost race (the commit path, compaction's replace, the manifest rewrite) takes its
attempts from ``patient_attempts``.
"""

from __future__ import annotations

import random
import time
from typing import Iterator

#: How long a loop keeps retrying lost races, after its minimum number of tries, before giving up.
PATIENCE_S = 30.0


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))


def patient_attempts(at_least: int, patience_s: float = PATIENCE_S) -> Iterator[int]:
    """Attempt numbers: at least ``at_least`` of them, and more until ``patience_s`` has passed."""
    started = time.monotonic()
    attempt = 0
    while attempt < at_least or time.monotonic() - started < patience_s:
        yield attempt
        attempt += 1
