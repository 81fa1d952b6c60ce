"""The remote signer (``remote-signing`` delegation): SigV4 with the server's key, for requests inside one table.

This is how clients write to S3-compatible stores without STS: they send each S3 request they are
about to make (method, URI, headers; Iceberg's ``s3-signer-open-api``) and get back the headers
that sign it. ``RemoteSigner.target`` says which objects a request touches and which access level
that needs; the caller checks both against the table before ``sign``.

What is refused, because a signature would reach beyond the table's objects: bucket-level requests
other than a listing under the table's prefix; ACL, policy, tagging and lock sub-resources; ACL
grants and object-lock headers; copies from outside the table; a ``Host`` header other than the
URI's host. Multi-object deletes (``POST ?delete``) are refused too: their keys are in the body,
and a store need not check the body against the signed payload hash -- SeaweedFS does not, so a
signature for a checked body would delete any other keys sent with it. Headers are safe: stores
reject ``x-amz-*`` headers the signature does not cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import botocore.session
from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from iceshelf.tables.access import Level
from iceshelf.tables.delegation.credentials import CredentialsUnavailable
from iceshelf.tables.errors import ForbiddenError
from iceshelf.tables.settings import S3Settings

#: Query parameters of the object operations a table's files need: reads (ranged), single and
#: multipart writes, deletes; botocore adds ``x-id`` to name the operation.
_OBJECT_PARAMS = frozenset({"x-id", "uploads", "uploadId", "partNumber", "versionId"})
#: ListObjects(V2) parameters; ``prefix`` itself must lie inside the table.
_LIST_PARAMS = frozenset(
    {"x-id", "list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "encoding-type", "fetch-owner", "marker"}
)
_REFUSED_HEADERS = re.compile(r"^(x-amz-acl|x-amz-grant-.*|x-amz-object-lock-.*|x-amz-bypass-governance-retention)$", re.IGNORECASE)
_AWS_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3([.-][a-z0-9-]+)*\.amazonaws\.com$")


@dataclass(frozen=True)
class SignRequest:
    method: str
    uri: str
    headers: dict[str, list[str]]


@dataclass(frozen=True)
class Target:
    """The level a request needs on the table, and every ``(bucket, key)`` it touches (or lists below)."""

    level: Level
    objects: list[tuple[str, str]]


class _Signer(S3SigV4Auth):
    """SigV4 over the client's payload hash: the signer never sees the body it covers."""

    def __init__(self, credentials: ReadOnlyCredentials, region: str, payload_hash: str) -> None:
        super().__init__(credentials, "s3", region)
        self.payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self.payload_hash


def _header(headers: dict[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name.lower():
            return ", ".join(values)
    return None


class RemoteSigner:
    def __init__(self, s3: S3Settings) -> None:
        self.s3 = s3
        self._endpoint = urlsplit(s3.endpoint_url) if s3.endpoint_url else None
        self._credentials: Credentials | None = None

    def _server_credentials(self) -> ReadOnlyCredentials:
        """Without configured keys, the AWS SDK's own chain (environment, profile, instance role) signs.

        Looked up on first use: the chain may probe the instance metadata service, which would slow
        the start of every server that never signs.
        """
        if self._credentials is None and self.s3.access_key_id:
            self._credentials = Credentials(self.s3.access_key_id, self.s3.secret_access_key, self.s3.session_token)
        elif self._credentials is None:
            self._credentials = botocore.session.get_session().get_credentials()
        if self._credentials is None:
            raise CredentialsUnavailable("The server has no S3 credentials of its own to sign with")
        return self._credentials.get_frozen_credentials()

    def _bucket_and_key(self, uri: str) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(uri)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = unquote(parts.path)
        if self._endpoint is not None:
            if (parts.scheme, parts.netloc) != (self._endpoint.scheme, self._endpoint.netloc):
                raise ForbiddenError(f"The signer signs requests to {self.s3.endpoint_url} only")
            bucket, _, key = path.removeprefix("/").partition("/")
            return bucket, key, query
        host = parts.hostname or ""
        if parts.scheme != "https" or not host.endswith(".amazonaws.com"):
            raise ForbiddenError("The signer signs HTTPS requests to Amazon S3 only")
        if match := _AWS_VIRTUAL_HOST.match(host):
            return match["bucket"], path.removeprefix("/"), query
        bucket, _, key = path.removeprefix("/").partition("/")  # path style: s3.<region>.amazonaws.com/bucket/key
        return bucket, key, query

    def target(self, request: SignRequest) -> Target:
        method = request.method.upper()
        bucket, key, query = self._bucket_and_key(request.uri)
        for name in request.headers:
            if _REFUSED_HEADERS.match(name):
                raise ForbiddenError(f"The signer does not sign requests with a {name} header")
        if any(len(values) > 1 for values in query.values()):
            raise ForbiddenError("A query parameter given twice may be read either way by the store: not signed")
        host = _header(request.headers, "host")
        if host is not None and host != urlsplit(request.uri).netloc:
            raise ForbiddenError("The Host header must name the URI's host")
        if key:
            if not set(query) <= _OBJECT_PARAMS or method not in ("GET", "HEAD", "PUT", "POST", "DELETE"):
                raise ForbiddenError(f"The signer signs only object reads, writes and deletes, not {method} ?{'&'.join(query)}")
            objects = [(bucket, key)]
            if source := _header(request.headers, "x-amz-copy-source"):
                source_bucket, _, source_key = unquote(source.split("?")[0]).removeprefix("/").partition("/")
                objects.append((source_bucket, source_key))
            return Target(Level.READ if method in ("GET", "HEAD") else Level.WRITE, objects)
        if method == "GET" and set(query) <= _LIST_PARAMS and "prefix" in query:
            return Target(Level.READ, [(bucket, query["prefix"][0])])
        raise ForbiddenError(f"The signer does not sign bucket-level {method} ?{'&'.join(query)} requests")

    def sign(self, request: SignRequest) -> dict[str, list[str]]:
        """Only the headers the client must add: the signature and what it covers beyond the client's own.

        The query is canonicalized from its decoded parameters, as the store does, not as the client
        happened to encode it.
        """
        parts = urlsplit(request.uri)
        params = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        aws_request = AWSRequest(method=request.method.upper(), url=urlunsplit(parts._replace(query="")), params=params)
        for name, values in request.headers.items():
            aws_request.headers[name] = ", ".join(values)
        payload_hash = _header(request.headers, "x-amz-content-sha256") or UNSIGNED_PAYLOAD
        _Signer(self._server_credentials(), self.s3.region, payload_hash).add_auth(aws_request)
        return {
            name: [value]
            for name, value in aws_request.headers.items()
            if _header(request.headers, name) != value
        }

