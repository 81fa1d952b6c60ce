"""``kill -9`` of a replica and of SeaweedFS under concurrent appends, then the truth.

Two replicas serve one SeaweedFS warehouse while four pyiceberg appenders (two per replica) append
one row each, as fast as they can, for ``ICESHELF_FAULT_RUN_S`` seconds (20 by default; set it for a
longer manual run). During the run one replica is killed with SIGKILL (commits in flight) and
restarted, then SeaweedFS is killed with SIGKILL and restarted on the same data directory, then frozen
with SIGSTOP for ``FREEZE_S`` and thawed. Its clients reach it through a ``FaultProxy`` that stays put
while SeaweedFS comes back on a new port.

Then the truth: every acknowledged append is in the table exactly once (an append that raised may
or may not be there, but never twice; a ``CommitFailedException`` is a refusal, not a loss); every
file the metadata references exists with its recorded size; the snapshot and metadata logs are
ordered; pyiceberg and DuckDB read the table (DuckDB nothing pyiceberg does not); and every 5xx any client saw was a clean Iceberg
ErrorModel (a 503 or a commit-state-unknown), never a 500 "Internal server error".
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException, ServiceUnavailableError

from bench.servers.faultproxy import FaultProxy
from bench.servers.iceshelf import IceshelfServer, start_iceshelf
from bench.servers.seaweed import SeaweedServer, launch_seaweed
from tests.clients import CatalogEnv, unique_name

RUN_S = float(os.environ.get("ICESHELF_FAULT_RUN_S", "20"))
APPENDERS = 4
SCHEMA = pa.schema([pa.field("writer", pa.int64()), pa.field("seq", pa.int64())])
CLEAN_5XX = {"ServiceUnavailableException", "CommitStateUnknownException"}
#: Java's TableMetadata refuses snapshot-log entries that step back by more than this.
ONE_MINUTE_MS = 60_000
#: How long SeaweedFS stays frozen (SIGSTOP): longer than a request's read timeout would be patient.
FREEZE_S = 10.0
#: Each fault and the moment it ends: recovery is measured from the one to the first acknowledgement after.
FAULTS = {"replica killed": "replica restarted", "store killed": "store restarted", "store frozen": "store thawed"}


@dataclass
class Run:
    acknowledged: list[tuple[int, int, float]] = field(default_factory=list)  # writer, seq, when acknowledged
    unknown: set[tuple[int, int]] = field(default_factory=set)  # raised in flight: may or may not be there
    refused: Counter = field(default_factory=Counter)  # 409 after pyiceberg's retries, 503: nothing applied
    responses_5xx: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def test_kill_a_replica_and_seaweed_under_appends(tmp_path, seaweed) -> None:  # noqa: ARG001 - the session's, untouched
    store_dir = tmp_path / "seaweed"
    weed: SeaweedServer = launch_seaweed(store_dir)
    proxy = FaultProxy(weed.endpoint_url).start()
    bucket = weed.create_bucket()
    warehouse = f"s3://{bucket}/warehouse"
    server_env = {
        "AWS_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key,
        "AWS_REGION": weed.region, "ICESHELF_S3_CONNECT_TIMEOUT": "2", "ICESHELF_S3_READ_TIMEOUT": "5",
        "ICESHELF_S3_RETRY_BUDGET": "8",
    }
    replicas: list[IceshelfServer] = [start_iceshelf(warehouse, tmp_path, server_env) for _ in range(2)]
    urls = [r.url for r in replicas]
    env = CatalogEnv("s3", replicas[0], warehouse, weed)
    run, stop = Run(), threading.Event()
    timeline: dict[str, float] = {}
    try:
        namespace = unique_name()
        admin = env.catalog()
        admin.create_namespace(namespace)
        name = f"{namespace}.log"
        admin.create_table(name, SCHEMA, properties={"commit.retry.num-retries": "20", "commit.retry.max-wait-ms": "300"})

        def client(url: str):
            catalog = env.catalog(url=url, **{"s3.endpoint": proxy.url})

            def record(response, *args, **kwargs):
                if response.status_code >= 500:
                    with run.lock:
                        run.responses_5xx.append((response.status_code, response.text))

            catalog._session.hooks["response"].append(record)
            return catalog

        def appender(writer: int) -> None:
            seq = 0
            while not stop.is_set():
                try:
                    table = client(urls[writer % 2]).load_table(name)
                except Exception:  # a replica or the store is down: nothing was sent to commit
                    time.sleep(0.2)
                    continue
                try:
                    table.append(pa.table({"writer": [writer], "seq": [seq]}, schema=SCHEMA))
                    with run.lock:
                        run.acknowledged.append((writer, seq, time.monotonic()))
                except (CommitFailedException, ServiceUnavailableError) as refused:
                    with run.lock:
                        run.refused[type(refused).__name__] += 1
                except (CommitStateUnknownException, Exception):  # noqa: BLE001 - in flight: outcome unknown
                    with run.lock:
                        run.unknown.add((writer, seq))
                    time.sleep(0.2)
                seq += 1

        threads = [threading.Thread(target=appender, args=(w,), daemon=True) for w in range(APPENDERS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(3)
        rss_before = _rss_kib(replicas[0].process.pid)

        time.sleep(max(0.0, RUN_S * 0.2 - 3))
        timeline["replica killed"] = time.monotonic()
        _kill(replicas[1].process.pid)
        replicas[1].process.wait()
        time.sleep(2)
        replicas[1] = start_iceshelf(warehouse, tmp_path, server_env)
        urls[1] = replicas[1].url
        timeline["replica restarted"] = time.monotonic()

        time.sleep(max(0.0, started + RUN_S * 0.5 - time.monotonic()))
        timeline["store killed"] = time.monotonic()
        _kill(weed.pid)
        weed._reap()
        time.sleep(2)
        weed = launch_seaweed(store_dir)
        proxy.retarget(weed.endpoint_url)
        env.seaweed = weed
        timeline["store restarted"] = time.monotonic()

        time.sleep(max(5.0, started + RUN_S * 0.75 - time.monotonic()))  # recovery from the restart first
        timeline["store frozen"] = time.monotonic()
        os.kill(weed.pid, signal.SIGSTOP)
        time.sleep(FREEZE_S)
        os.kill(weed.pid, signal.SIGCONT)
        timeline["store thawed"] = time.monotonic()

        time.sleep(max(0.0, started + RUN_S + FREEZE_S - time.monotonic()))
        stop.set()
        for thread in threads:
            thread.join(120)
        assert not any(t.is_alive() for t in threads), "an appender hung"
        rss_after = _rss_kib(replicas[0].process.pid)

        # -- the truth -------------------------------------------------------------------------
        table = env.catalog(url=urls[0]).load_table(name)
        data = table.scan().to_arrow()
        present = Counter(zip(data["writer"].to_pylist(), data["seq"].to_pylist()))
        acknowledged = {(w, s) for w, s, _ in run.acknowledged}
        lost = acknowledged - set(present)
        duplicated = {row for row, count in present.items() if count > 1}
        unexplained = set(present) - acknowledged - run.unknown

        files_checked = _check_files(table, weed)
        log_problems = _log_problems(table.metadata)
        con = env.duckdb(url=urls[1])
        try:
            duck = Counter(con.sql(f"SELECT writer, seq FROM lake.{name}").fetchall())
        finally:
            con.close()

        # DuckDB picks the snapshot with the newest timestamp, not the current one: it reads every append
        # acknowledged before the read only while snapshots stay in time order (#20 §1). The read starts
        # after the last acknowledgement, so it must see exactly what pyiceberg sees.
        duckdb_missing = set(present) - set(duck)
        unclean = [(status, body) for status, body in run.responses_5xx if not _clean_error(body)]
        by_status = Counter(status for status, _ in run.responses_5xx)
        summary = {
            "run_s": round(time.monotonic() - started, 1),
            "acknowledged": len(acknowledged),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "unknown_outcomes": len(run.unknown),
            "unknown_present": len(run.unknown & set(present)),
            "refused": dict(run.refused),
            "5xx_by_status": dict(by_status),
            "recovery_s": _recovery(run, timeline),
            "rss_kib_before_after": [rss_before, rss_after],
            "files_checked": files_checked,
            "metadata_log_step_back_ms": _step_back(table.metadata),
            "duckdb_rows_missing": len(duckdb_missing),
        }
        print("FAULT-RUN", json.dumps(summary))
        (tmp_path / "summary.json").write_text(json.dumps(summary, indent=2))

        assert not log_problems, log_problems
        assert not lost, sorted(lost)
        assert not duplicated, sorted(duplicated)
        assert not unexplained, sorted(unexplained)
        assert all(count == 1 for count in duck.values()) and set(duck) == set(present), (sorted(duckdb_missing), duck - present)
        assert not unclean, unclean[:3]
        assert len(acknowledged) > 20, summary  # the run did real work around the faults
        assert all(r["recovered"] for r in summary["recovery_s"].values()), summary
    finally:
        stop.set()
        for replica in replicas:
            replica.stop()
        proxy.stop()
        weed.stop()


def _clean_error(body: str) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return error.get("type") in CLEAN_5XX and error.get("message") != "Internal server error"


def _recovery(run: Run, timeline: dict[str, float]) -> dict[str, dict]:
    """Per fault: seconds from it until the first append acknowledged after it (through any replica)."""
    out = {}
    for fault, ended in FAULTS.items():
        when = timeline[fault]
        after = sorted(t for _, _, t in run.acknowledged if t > when + 0.001)
        first = after[0] if after else None
        restarted = timeline[ended]
        out[fault] = {
            "recovered": first is not None,
            "first_ack_after_fault_s": None if first is None else round(first - when, 2),
            "first_ack_after_end_s": None if first is None else round(max(0.0, first - restarted), 2),
        }
    return out


def _check_files(table, weed: SeaweedServer) -> int:
    """Every manifest list, manifest and data file of every snapshot exists, with its recorded size."""
    s3 = weed.client()
    checked = 0

    def size(uri: str) -> int:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])

    try:
        seen: set[str] = set()
        for snapshot in table.metadata.snapshots:
            assert size(snapshot.manifest_list) > 0
            checked += 1
            for manifest in snapshot.manifests(table.io):
                if manifest.manifest_path in seen:
                    continue
                seen.add(manifest.manifest_path)
                assert size(manifest.manifest_path) == manifest.manifest_length, manifest.manifest_path
                checked += 1
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                    if entry.data_file.file_path not in seen:
                        seen.add(entry.data_file.file_path)
                        assert size(entry.data_file.file_path) == entry.data_file.file_size_in_bytes
                        checked += 1
    finally:
        s3.close()
    return checked


def _log_problems(metadata) -> list[str]:
    """What Java's ``TableMetadata`` would refuse to load (snapshot log out of order beyond its one-minute
    tolerance), and what Iceshelf promises beyond it: the server stamps the metadata log and
    ``last-updated-ms``, so they never step back at all."""
    problems = []
    log = [entry.timestamp_ms for entry in metadata.metadata_log]
    problems += [f"metadata log steps back: {a} -> {b}" for a, b in zip(log, log[1:]) if b < a]
    if log and metadata.last_updated_ms < log[-1]:
        problems.append(f"last-updated-ms {metadata.last_updated_ms} before the last metadata log entry {log[-1]}")
    snapshots = [entry.timestamp_ms for entry in metadata.snapshot_log]
    problems += [f"snapshot log steps back: {a} -> {b}" for a, b in zip(snapshots, snapshots[1:]) if b < a - ONE_MINUTE_MS]
    if not {e.snapshot_id for e in metadata.snapshot_log} <= {s.snapshot_id for s in metadata.snapshots}:
        problems.append("snapshot log names a snapshot the table does not have")
    return problems


def _step_back(metadata) -> int:
    """The largest step back in the metadata log, ``last-updated-ms`` included (0: none). Reported, not asserted:
    within a minute every reader tolerates it (#20 §1 is about removing it)."""
    log = [entry.timestamp_ms for entry in metadata.metadata_log] + [metadata.last_updated_ms]
    return max([0] + [a - b for a, b in zip(log, log[1:])])
