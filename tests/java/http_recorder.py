"""A loopback reverse proxy that records every HTTP exchange between a client under test and a server.

Java clients (the Iceberg RCK, Spark, Trino) log nothing of what they send, so a test that runs one
puts this in front of the server and reports the exchanges that belong to a failing test (by time):

    with HttpRecorder("http://127.0.0.1:8181") as recorder:
        run_the_client(uri=recorder.url)
    for exchange in recorder.between(t0, t1):
        print(exchange.describe())

It forwards bytes unchanged except hop-by-hop headers and ``Accept-Encoding`` (so bodies can be read),
speaks HTTP/1.1 keep-alive to the client, and only ever forwards to a loopback upstream.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
    "content-length", "host", "accept-encoding",
}
_KEPT_REQUEST_HEADERS = {"content-type", "x-iceberg-access-delegation", "idempotency-key", "if-none-match", "prefer"}


@dataclass
class Exchange:
    started: float  # time.time() when the request arrived
    elapsed: float
    method: str
    path: str
    request_headers: dict[str, str]
    request_body: str
    status: int
    response_body: str

    def describe(self, limit: int = 1500) -> str:
        lines = [f"{self.method} {self.path}"]
        if self.request_body:
            lines.append(f"  > {_clip(self.request_body, limit)}")
        lines.append(f"  < {self.status} {_clip(self.response_body, limit)}")
        return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class HttpRecorder:
    def __init__(self, upstream: str, max_body: int = 64 * 1024) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.port is None:
            raise ValueError(f"the recorder forwards only to http://<loopback>:<port>, not {upstream!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.max_body = max_body
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-recorder", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "HttpRecorder":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def between(self, start: float, end: float) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if start <= e.started <= end]

    def write_jsonl(self, path: Path) -> None:
        with self._lock, open(path, "w") as out:
            for exchange in self.exchanges:
                out.write(json.dumps(asdict(exchange)) + "\n")

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def _text(self, body: bytes) -> str:
        text = body[: self.max_body].decode("utf-8", errors="replace")
        return text if len(body) <= self.max_body else f"{text}... ({len(body)} bytes)"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        recorder = self
        local = threading.local()  # one upstream connection per client connection's thread

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet: the exchanges are the log
                pass

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                started = time.time()
                body = self._read_body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Host"] = f"{recorder.upstream_host}:{recorder.upstream_port}"
                status, reply_headers, reply = 502, [], b""
                for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
                    connection = getattr(local, "connection", None)
                    if connection is None:
                        connection = local.connection = http.client.HTTPConnection(
                            recorder.upstream_host, recorder.upstream_port, timeout=300
                        )
                    try:
                        connection.request(self.command, self.path, body=body if body or self.command in ("POST", "PUT") else None, headers=headers)
                        response = connection.getresponse()
                        status, reply_headers, reply = response.status, response.getheaders(), response.read()
                        break
                    except (OSError, http.client.HTTPException) as e:
                        connection.close()
                        local.connection = None
                        reply = f"recorder: upstream failed: {e!r}".encode()
                self.send_response_only(status)
                for name, value in reply_headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                if self.command != "HEAD" and status not in (204, 304):
                    self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if self.command != "HEAD" and status not in (204, 304):
                    self.wfile.write(reply)
                recorder._record(
                    Exchange(
                        started=started,
                        elapsed=time.time() - started,
                        method=self.command,
                        path=self.path,
                        request_headers={k: v for k, v in self.headers.items() if k.lower() in _KEPT_REQUEST_HEADERS},
                        request_body=recorder._text(body),
                        status=status,
                        response_body=recorder._text(reply),
                    )
                )

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        return Handler
