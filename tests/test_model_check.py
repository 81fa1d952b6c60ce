"""The catalog protocols, model-checked in CI: every schedule within bounds, over the real code.

Each scenario races a few processes (single-table commits, transactions, a rename, a namespace
drop, readers, stale appends rebased and batched by group commit) through the real
``TableStore`` on one in-memory store; the explorer (``tests/modelcheck``) runs every
interleaving of their object-store operations within its bounds, with crashes, checks what a
reader sees at every state, recovers after each schedule and checks the invariants. The broken variants prove that the check fails when the protocol
is wrong, and show the counterexample it finds.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from tests.modelcheck.broken import (
    batch_acks_a_lost_swing,
    compare_then_write,
    overwriting_publish,
    rebase_forgets_the_head,
    rebase_keeps_the_client_clock,
    settle_before_flip,
)
from tests.modelcheck.explorer import Report, Scenario, explore
from tests.modelcheck.scenarios import SCENARIOS


@pytest.fixture(scope="module")
def reports(request: pytest.FixtureRequest) -> Iterator[list[Report]]:
    """Every exploration's counts, written to the terminal after this module (``make test`` shows them)."""
    collected: list[Report] = []
    yield collected
    plugins = request.config.pluginmanager
    terminal, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if terminal is not None and capture is not None and collected:
        with capture.global_and_fixture_disabled():
            terminal.write_line("")
            terminal.write_sep("-", "model check: schedules explored per scenario")
            for report in collected:
                terminal.write_line(str(report))


def _run(scenario: Scenario, reports: list[Report]) -> Report:
    report = explore(scenario)
    reports.append(report)
    return report


@pytest.mark.parametrize(
    "make",
    SCENARIOS,
    ids=[make.__name__ for make in SCENARIOS],
)
def test_protocol_keeps_its_invariants(make: Callable[[], Scenario], reports: list[Report]) -> None:
    report = _run(make(), reports)
    assert report.violation is None, str(report.violation)
    assert report.schedules > 10, f"{report}: too few schedules to mean anything"


@pytest.mark.parametrize(
    ("make", "symptom"),
    [
        (compare_then_write, "lost update"),
        (overwriting_publish, "lost update"),
        (settle_before_flip, "half-applied"),
        (batch_acks_a_lost_swing, "lost update"),
        (rebase_forgets_the_head, "not exactly its own and every earlier append's"),
        (rebase_keeps_the_client_clock, "steps back in time"),
    ],
    ids=[
        "compare-then-write store",
        "overwrite publish",
        "settle before flip",
        "batch acks a lost swing",
        "rebase forgets the head",
        "rebase keeps the client clock",
    ],
)
def test_a_broken_protocol_is_caught(make: Callable[[], Scenario], symptom: str, reports: list[Report]) -> None:
    report = _run(make(), reports)
    assert report.violation is not None, f"{report}: the model check missed a broken protocol"
    print(report.violation)  # the counterexample: shown with -rP, or -s
    assert symptom in report.violation.message, str(report.violation)
