"""A small client of the SQL endpoint's Athena-style API, for tests and benchmarks."""

from __future__ import annotations

import httpx
import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class SqlError(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.type = body.get("error", {}).get("type")
        self.message = body.get("error", {}).get("message", "")


class SqlClient:
    def __init__(self, url: str, **defaults: object) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        self.defaults = {k: v for k, v in defaults.items() if v is not None}

    def close(self) -> None:
        self.http.close()

    def start(self, sql: str, **options: object) -> dict:
        """``POST /v1/sql/queries``; a refused statement raises ``SqlError``."""
        response = self.http.post("/v1/sql/queries", json={"sql": sql, **self.defaults, **options})
        if response.is_error:
            raise SqlError(response.status_code, response.json())
        return response.json()

    def wait(self, query_id: str, seconds: float = 60) -> dict:
        record = self.http.get(f"/v1/sql/queries/{query_id}", params={"wait": seconds}).raise_for_status().json()
        assert record["state"] not in ("QUEUED", "RUNNING"), record
        return record

    def arrow(self, query_id: str) -> pa.Table:
        response = self.http.get(f"/v1/sql/queries/{query_id}/results", headers={"Accept": ARROW_STREAM}).raise_for_status()
        assert response.headers["content-type"] == ARROW_STREAM
        return pa.ipc.open_stream(response.content).read_all()

    def page(self, query_id: str, page_token: str | None = None, max_rows: int = 1000) -> dict:
        params: dict = {"max_rows": max_rows} | ({"page_token": page_token} if page_token else {})
        return self.http.get(f"/v1/sql/queries/{query_id}/results", params=params).raise_for_status().json()

    def run(self, sql: str, **options: object) -> dict:
        """Start, wait until final; the final record."""
        return self.wait(self.start(sql, **options)["query_id"])

    def query(self, sql: str, **options: object) -> pa.Table:
        """Run a statement that must succeed; its result as Arrow."""
        record = self.run(sql, **options)
        assert record["state"] == "SUCCEEDED", record
        return self.arrow(record["query_id"])

    def rows(self, sql: str, **options: object) -> list[tuple]:
        return [tuple(row.values()) for row in self.query(sql, **options).to_pylist()]
