"""Timing and sampling, shared by every benchmark: one place decides how a figure is measured.

A system under test is handed to the harness as a *maker*: a callable that opens whatever the
system needs (a connection, a DuckDB, a pyiceberg catalog) and returns the operation to time and
the function that closes it. The harness never knows what it is timing.

The samples of the systems compared in one benchmark are taken in *rounds* that take the
systems in turn, rotating who goes first, so that background load on a shared machine falls on
every system alike instead of on whichever happened to run during it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

#: One timed operation of a system.
Op = Callable[[], object]
#: Releases what a maker opened.
Close = Callable[[], None]
#: Opens a system for timing: (the operation, how to close it).
MakeOp = Callable[[], tuple[Op, Close]]
#: Told of a system that failed, so the others still run: (system, exception).
OnError = Callable[[str, BaseException], None]


def summarize(durations: list[float]) -> dict[str, float | int]:
    """Latency figures in milliseconds (linear-interpolated percentiles)."""
    if not durations:
        raise ValueError("no samples")
    ordered = sorted(durations)

    def pct(q: float) -> float:
        pos = (len(ordered) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {
        "p50_ms": round(pct(0.50) * 1e3, 4),
        "p99_ms": round(pct(0.99) * 1e3, 4),
        "mean_ms": round(sum(ordered) / len(ordered) * 1e3, 4),
        "min_ms": round(ordered[0] * 1e3, 4),
        "max_ms": round(ordered[-1] * 1e3, 4),
        "samples": len(ordered),
    }


def sequential(op: Op, count: int, warmup: int) -> list[float]:
    """``warmup`` untimed calls, then the durations of ``count`` timed ones."""
    for _ in range(warmup):
        op()
    out = []
    for _ in range(count):
        start = time.perf_counter()
        op()
        out.append(time.perf_counter() - start)
    return out


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total)) if total > 0 else 1
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def rotated(names: list[str], by: int) -> list[str]:
    """``names`` starting at position ``by`` (mod its length): who goes first in round ``by``."""
    if not names:
        return names
    by %= len(names)
    return names[by:] + names[:by]


def interleaved_latency(makers: dict[str, MakeOp], count: int, warmup: int, rounds: int, on_error: OnError) -> dict[str, list[float]]:
    """``count`` sequential timed calls per system, spread over ``rounds`` rounds that take the
    systems in turn (rotating who goes first), so background load on a shared machine falls on
    every system alike. ``warmup`` untimed calls per system precede its first round."""
    opened: dict[str, tuple[Op, Close]] = {}
    for name, make in makers.items():
        try:
            opened[name] = make()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            on_error(name, exc)
    samples: dict[str, list[float]] = {name: [] for name in opened}
    try:
        for r, chunk in enumerate(_split(count, rounds)):
            for name in rotated(list(opened), r):
                op, close = opened[name]
                try:
                    samples[name] += sequential(op, chunk, warmup if r == 0 else 0)
                except Exception as exc:  # noqa: BLE001
                    on_error(name, exc)
                    close()
                    del opened[name]
                    samples.pop(name)
    finally:
        for _, close in opened.values():
            close()
    return samples


def concurrent_window(make_op: MakeOp, threads: int, seconds: float) -> tuple[list[float], float]:
    """``threads`` workers, each looping on its own ``op`` for ``seconds``: (latencies, elapsed)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    window = [0.0, 0.0]  # start, stop: set as the barrier releases, before any worker runs

    def open_window() -> None:
        window[0] = time.perf_counter()
        window[1] = window[0] + seconds

    barrier = threading.Barrier(threads + 1, action=open_window)

    def worker(slot: int) -> None:
        close: Close = lambda: None  # noqa: E731
        try:
            op, close = make_op()
            op()  # connect and warm up outside the timed window
            barrier.wait()
            mine = latencies[slot]
            while True:
                start = time.perf_counter()
                if start >= window[1]:
                    break
                op()
                mine.append(time.perf_counter() - start)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
            barrier.abort()
        finally:
            close()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    for t in pool:
        t.join(timeout=seconds + 120)
    elapsed = time.perf_counter() - window[0]
    if errors:
        raise errors[0]
    if window[0] == 0.0:
        raise RuntimeError("throughput workers never started")
    return [d for per in latencies for d in per], elapsed


def interleaved_throughput(makers: dict[str, MakeOp], threads: int, seconds: float, rounds: int, on_error: OnError) -> dict[str, dict]:
    """Each system gets ``seconds`` of ``threads``-way load in total, in ``rounds`` turns."""
    rounds = max(1, rounds)
    collected: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in makers}
    for r in range(rounds):
        for name in rotated(list(collected), r):
            try:
                latencies, elapsed = concurrent_window(makers[name], threads, seconds / rounds)
            except Exception as exc:  # noqa: BLE001
                on_error(name, exc)
                del collected[name]
                continue
            so_far, total = collected[name]
            collected[name] = (so_far + latencies, total + elapsed)
    out = {}
    for name, (latencies, elapsed) in collected.items():
        if not latencies:
            on_error(name, RuntimeError("no operation completed in the throughput window"))
            continue
        under_load = summarize(latencies)
        out[name] = {
            "ops_per_s": round(len(latencies) / elapsed, 2),
            "threads": threads,
            "seconds": round(elapsed, 3),
            "ops": len(latencies),
            "p50_ms_under_load": under_load["p50_ms"],
            "p99_ms_under_load": under_load["p99_ms"],
        }
    return out
