"""Backoff between attempts of a compare-and-swap loop: jittered, so losers of a race spread out."""

from __future__ import annotations

import random
import time


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
