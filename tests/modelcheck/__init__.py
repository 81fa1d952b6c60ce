"""Stateless model checking of the catalog protocols, CHESS-style, over the real code.

* ``scheduled_store`` -- every object-store operation of a logical process (a thread running
  the real ``TableStore``) becomes a scheduling point; one process runs at a time;
* ``world`` -- the clock, uuids and backoff made deterministic, so schedules replay exactly;
* ``explorer`` -- depth-first search over schedules and crashes within bounds, each run from
  scratch, with an observer at every state and recovery plus invariants after every run;
* ``invariants`` / ``checks`` -- what must hold of a warehouse, and of what processes were told;
* ``processes`` / ``scenarios`` -- the races of issue 3 section 4, (a) to (e), and (f): stale
  pure appends rebased and batched by group commit (``appends``: its processes and invariants);
* ``broken`` -- deliberately wrong variants that the check must catch.

``tests/test_model_check.py`` runs it all in ``make test``.
"""
