"""Start real Iceshelf servers (uvicorn subprocesses on loopback) for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class IceshelfServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_iceshelf(warehouse: str, log_dir: Path, env: dict[str, str] | None = None, timeout: float = 30) -> IceshelfServer:
    port = free_port()
    log_path = log_dir / f"iceshelf-{port}.log"
    # Background maintenance would rewrite and expire other tests' tables under them: tests that
    # want the scheduler pass ICESHELF_MAINTENANCE=on in ``env``.
    full_env = {**os.environ, "ICESHELF_MAINTENANCE": "off", **(env or {})}
    command = [sys.executable, "-m", "iceshelf.catalog.cli", "serve", "--warehouse", warehouse, "--port", str(port), "--log-level", "warning"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=Path(__file__).parents[2])
    server = IceshelfServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"iceshelf exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/v1/config", timeout=2).status_code in (200, 401):  # 401: up, with auth on
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"iceshelf did not come up in {timeout}s:\n{server.log()}")


@contextmanager
def running_iceshelf(warehouse: str, log_dir: Path, env: dict[str, str] | None = None) -> Iterator[IceshelfServer]:
    server = start_iceshelf(warehouse, log_dir, env)
    try:
        yield server
    finally:
        server.stop()
