"""S3 store: any S3-compatible service (AWS, SeaweedFS, MinIO) through s3fs's aiobotocore client.

Conditional writes are S3's own: ``Create`` is ``PutObject`` with ``If-None-Match: *`` and
``Update`` is ``PutObject`` with ``If-Match: <etag>``. The etag is kept exactly as S3 returns
it (quotes included) so it can be handed straight back to ``If-Match``.

Two clients, on purpose:

* reads, listings, deletes and unconditional writes are idempotent, so they go through a
  client that retries transient faults (s3fs's retry loop plus botocore's);
* conditional writes go through a client that never retries a request the server may have
  received: a retried ``Create``/``Update`` whose first attempt landed would answer 412 and
  we would report a lost race for a write that actually won. Such a request fails with the
  transport error instead (outcome unknown, the caller must re-read). Only failures to
  *connect*, where the request was never sent, are retried.

Every fault is bounded and typed. A request gets ``connect_timeout_s`` to connect and
``read_timeout_s`` of silence per read (a stalled store fails, it does not hang); an idempotent
request -- the whole of it, a GET's body included, which botocore's and s3fs's own retries
never covered -- is retried up to ``retry_attempts`` times within ``retry_budget_s`` on a
refused or reset connection, a cut body, a timeout, a 5xx or throttling. What still fails raises
one ``StoreUnavailable`` subclass per failure class (``base.py``); expected outcomes (missing key,
lost race) raise the contract's own exceptions, and anything else (a missing bucket, bad
credentials) propagates as s3fs raised it.

Known S3 semantics worth remembering:

* the etag of a single-part upload is the MD5 of its content (AWS and SeaweedFS), so two
  writes of identical bytes have the same etag and an ``Update`` cannot tell them apart
  (ABA). Writers that need a CAS must make every version's bytes unique.
* SeaweedFS answers ``If-Match`` on a missing key with 412 where AWS answers 404; both are
  ``PreconditionFailed`` here.
* SeaweedFS keys are filesystem paths: ``a//b`` aliases ``a/b`` and ``.``/``..`` segments are
  rejected, so such keys are refused here up front (``ValueError``), as ``LocalStore`` does.
* SeaweedFS serialises conditional writes to one key: with N writers racing, the losers are
  answered one by one roughly a second apart, so a request can take N seconds; the read
  timeout is generous for that reason.
* AWS may answer 409 ``ConditionalRequestConflict`` while another conditional write to the
  same key is in flight; that is a lost race too.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from typing import Any, Awaitable, Callable, TypeVar

import aiobotocore.session
import aiohttp
import fsspec.asyn
import s3fs
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from iceshelf.tables.objectstore.base import (
    Create,
    GetResult,
    ObjectAlreadyExists,
    ObjectMeta,
    ObjectNotFound,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    StoreConnectionLost,
    StoreServerError,
    StoreThrottled,
    StoreTimeout,
    StoreUnavailable,
    StoreUnreachable,
    Update,
)
from iceshelf.tables.settings import S3Settings

T = TypeVar("T")

_THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "429"})

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_LOST_CREATE = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_LOST_UPDATE = _LOST_CREATE | _NOT_FOUND


_session: aiobotocore.session.AioSession | None = None
_session_lock = threading.Lock()


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    """Drop the ``Expect: 100-continue`` botocore puts on every PutObject.

    aiohttp waits for the interim "100 Continue" with no timeout at all: if it never comes
    (a stalled server, a lost packet, a proxy) the call hangs forever instead of failing
    after ``read_timeout``. Our bodies are small; sending them straight away costs nothing.
    """
    params.get("headers", {}).pop("Expect", None)


class _NeverResendSession(AIOHTTPSession):
    """The conditional writes' HTTP session: aiohttp must not resend a request by itself.

    aiohttp resends a PUT once, silently, when the connection drops before a response arrives
    (RFC 9112's retry of idempotent methods). A conditional PUT is not idempotent: if the first
    one landed, the resend answers 412 and a won race is reported as lost. aiohttp has no public
    switch for this, so the flag is cleared on each session this client creates.
    """

    async def _get_session(self, proxy_url):  # type: ignore[no-untyped-def]
        session = await super()._get_session(proxy_url)
        session._retry_connection = False
        return session


def _shared_session() -> aiobotocore.session.AioSession:
    """One botocore session for every store: it caches the parsed service models, which makes
    creating a client ~10x cheaper than with a session of its own. Clients stay per store."""
    global _session
    with _session_lock:
        if _session is None:
            session = aiobotocore.session.AioSession()
            session.get_component("event_emitter").register_last("before-call.s3", _no_expect_continue)
            _session = session
        return _session


def _client_error(exc: BaseException) -> ClientError | None:
    """The botocore ``ClientError`` behind ``exc``: s3fs translates them to ``OSError`` with the original as ``__cause__``."""
    seen = 0
    while exc is not None and seen < 4:
        if isinstance(exc, ClientError):
            return exc
        exc = exc.__cause__
        seen += 1
    return None


def _error_code(exc: BaseException) -> str | None:
    err = _client_error(exc)
    if err is None:
        return None
    response = err.response or {}
    code = str(response.get("Error", {}).get("Code", "") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # HEAD responses have no body, so botocore only knows the status ("404").
    return code or (str(status) if status else None)


def _fault(exc: BaseException) -> StoreUnavailable | None:
    """The typed transient fault behind ``exc`` (s3fs and botocore wrap them), or ``None`` for any other error."""
    seen = 0
    while exc is not None and seen < 6:
        if isinstance(exc, StoreUnavailable):
            return exc
        if isinstance(exc, ClientError):
            status = int((exc.response or {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if _error_code(exc) in _THROTTLED or status == 429:
                return StoreThrottled(f"the store is throttling requests: {exc}")
            return StoreServerError(f"the store answered {status}: {exc}") if status >= 500 else None
        if isinstance(exc, EndpointConnectionError):
            # aiobotocore wraps every aiohttp connection error in this one, a reset after the
            # request was sent too: only a failure to connect proves the request never left.
            inner = exc.kwargs.get("error")
            if inner is not None and not isinstance(inner, (aiohttp.ClientConnectorError, socket.gaierror)):
                return StoreConnectionLost(f"the connection to the store was lost: {inner!r}")
            return StoreUnreachable(f"cannot connect to the store: {exc}")
        if isinstance(exc, (ConnectTimeoutError, aiohttp.ClientConnectorError, ConnectionRefusedError)):
            return StoreUnreachable(f"cannot connect to the store: {exc}")
        if isinstance(exc, (ReadTimeoutError, TimeoutError)):
            return StoreTimeout(f"the store did not answer in time: {exc}")
        if isinstance(exc, (ConnectionClosedError, ResponseStreamingError, HTTPClientError, aiohttp.ClientPayloadError,
                            aiohttp.ClientConnectionError, http.client.IncompleteRead, ConnectionError)):
            return StoreConnectionLost(f"the connection to the store was lost: {exc}")
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if value is not None else 0


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str, settings: S3Settings) -> None:
        if not bucket:
            raise ValueError("S3 store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._fs = self._filesystem()
        self._cas_fs = self._filesystem(never_resend=True)

    def _filesystem(self, never_resend: bool = False) -> s3fs.S3FileSystem:
        """A client that never retries by itself: ``_idempotent`` retries, with one budget for every layer."""
        s = self.settings
        config: dict[str, Any] = {
            "connect_timeout": s.connect_timeout_s,
            "read_timeout": s.read_timeout_s,
            "retries": {"mode": "standard", "total_max_attempts": 1},
            "max_pool_connections": 64,  # conditional writes can wait seconds on SeaweedFS; do not starve others
        }
        if never_resend:
            config["http_session_cls"] = _NeverResendSession
        if s.path_style:
            config["s3"] = {"addressing_style": "path"}
        client_kwargs: dict[str, Any] = {"region_name": s.region}
        if s.endpoint_url:
            client_kwargs["endpoint_url"] = s.endpoint_url
        fs = s3fs.S3FileSystem(
            key=s.access_key_id,
            secret=s.secret_access_key,
            token=s.session_token,
            client_kwargs=client_kwargs,
            config_kwargs=config,
            session=_shared_session(),
            skip_instance_cache=True,  # each store owns its clients; close() must not close someone else's
            use_listings_cache=False,
        )
        fs.retries = 1  # s3fs's own retry loop around each call (a class attribute): off, see above
        return fs

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """An idempotent request, retried on transient faults."""
        return self._run(lambda: self._fs._call_s3(method, Bucket=self.bucket, **kwargs))

    def _run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        return fsspec.asyn.sync(self._fs.loop, self._idempotent, attempt)

    async def _idempotent(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the attempts or the time budget run out.

        Each attempt is cut off where the budget ends, so a store that drips bytes cannot hold a
        request longer than ``retry_budget_s`` plus one backoff.
        """
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.retry_budget_s
        attempts = max(1, s.retry_attempts)
        for number in range(attempts):
            remaining = deadline - loop.time()
            try:
                return await asyncio.wait_for(attempt(), timeout=max(remaining, 0.001))
            except Exception as exc:
                fault = _fault(exc)
                if fault is None:
                    raise
                if loop.time() >= deadline and isinstance(fault, StoreTimeout):
                    fault = StoreTimeout(f"the store did not answer within the {s.retry_budget_s:g} s retry budget")
                pause = min(0.1 * 2**number, 2.0)
                if number == attempts - 1 or deadline - loop.time() < pause:
                    raise fault from exc
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _conditional(self, **kwargs: Any) -> str:
        """A conditional write: retried only while no connection could be made (the request was never sent)."""
        attempts = max(1, self.settings.retry_attempts)
        for number in range(attempts):
            try:
                response = await self._cas_fs._call_s3("put_object", Bucket=self.bucket, **kwargs)
                return response["ETag"]
            except Exception as exc:
                fault = _fault(exc)
                if not isinstance(fault, StoreUnreachable) or number == attempts - 1:
                    raise
            await asyncio.sleep(min(0.1 * 2**number, 2.0))
        raise AssertionError("unreachable")

    def _key(self, key: str) -> str:
        # Same rule as LocalStore. SeaweedFS is path-based: it folds "a//b" into "a/b" (two keys,
        # one object), stores "a/" as a directory, and answers 400 to "." and ".." segments.
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"invalid object key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    # -- operations -------------------------------------------------------------------------

    def get(self, key: str) -> GetResult:
        full_key = self._key(key)
        try:
            data, etag = self._run(lambda: self._get(full_key))
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        return GetResult(data, etag)

    async def _get(self, full_key: str) -> tuple[bytes, str]:
        response = await self._fs._call_s3("get_object", Bucket=self.bucket, Key=full_key)
        async with response["Body"] as body:
            data = await body.read()
        return data, response["ETag"]

    def head(self, key: str) -> ObjectMeta:
        try:
            response = self._call("head_object", Key=self._key(key))
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        return ObjectMeta(key, int(response["ContentLength"]), response["ETag"], _ms(response.get("LastModified")))

    def put(self, key: str, data: bytes, mode: PutMode = Overwrite()) -> str:
        kwargs: dict[str, Any] = {"Key": self._key(key), "Body": bytes(data)}
        match mode:
            case Overwrite():
                return self._call("put_object", **kwargs)["ETag"]
            case Create():
                kwargs["IfNoneMatch"] = "*"
                lost, error = _LOST_CREATE, ObjectAlreadyExists
            case Update(etag=etag):
                kwargs["IfMatch"] = etag
                lost, error = _LOST_UPDATE, PreconditionFailed
            case _:
                raise TypeError(f"unknown put mode: {mode!r}")
        try:
            return fsspec.asyn.sync(self._cas_fs.loop, self._conditional, **kwargs)
        except Exception as exc:
            if _error_code(exc) in lost:
                raise error(key) from None
            fault = _fault(exc)
            if fault is None or fault is exc:
                raise
            raise fault from exc

    def delete(self, key: str) -> None:
        try:
            self._call("delete_object", Key=self._key(key))
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND:
                return
            raise

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        if limit <= 0:
            return []
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        kwargs: dict[str, Any] = {"Prefix": full_prefix, "MaxKeys": min(limit, 1000)}
        if start_after is not None:
            kwargs["StartAfter"] = f"{self.prefix}/{start_after}" if self.prefix else start_after
        out: list[ObjectMeta] = []
        while True:
            response = self._call("list_objects_v2", **kwargs)
            for item in response.get("Contents", []):
                out.append(ObjectMeta(self._rel(item["Key"]), int(item["Size"]), item["ETag"], _ms(item.get("LastModified"))))
            if len(out) >= limit or not response.get("IsTruncated") or not response.get("NextContinuationToken"):
                return out[:limit]
            kwargs = {"Prefix": full_prefix, "MaxKeys": min(limit - len(out), 1000),
                      "ContinuationToken": response["NextContinuationToken"]}

    def close(self) -> None:
        for fs in (self._fs, self._cas_fs):
            creator = getattr(fs, "_s3creator", None)
            if creator is not None and getattr(fs, "_s3", None) is not None:
                try:
                    fsspec.asyn.sync(fs.loop, creator.__aexit__, None, None, None, timeout=10)
                finally:
                    fs._s3 = None
                    fs._s3creator = None
