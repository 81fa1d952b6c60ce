"""Vended credentials: an STS session narrowed to one table's prefix (``vended-credentials`` delegation).

The server's own key assumes ``CredentialSettings.role_arn`` with an inline session policy. A
session may do only what both the role and that policy allow, so whatever the role grants, the
client gets the table's objects and nothing else -- read-only unless its caller may write the table.
Listing is granted on the bucket with an ``s3:prefix`` condition, or it would reveal every other
table's object names.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

import botocore.config
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from iceshelf.tables.delegation.scope import TableScope
from iceshelf.tables.settings import CredentialSettings, S3Settings

READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")


class CredentialsUnavailable(OSError):
    """STS refused or could not be reached: like any storage fault, the catalog answers 503."""


def session_policy(scope: TableScope, write: bool) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": list(READ_ACTIONS + (WRITE_ACTIONS if write else ())),
                "Resource": [f"arn:aws:s3:::{scope.bucket}/{scope.prefix}/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{scope.bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{scope.prefix}/*"]}},
            },
            {"Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [f"arn:aws:s3:::{scope.bucket}"]},
        ],
    }


@dataclass(frozen=True)
class VendedCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at_ms: int

    def properties(self) -> dict[str, str]:
        """In the spelling of Iceberg's FileIO properties, which pyiceberg, Java and DuckDB all read."""
        return {
            "s3.access-key-id": self.access_key_id,
            "s3.secret-access-key": self.secret_access_key,
            "s3.session-token": self.session_token,
            "s3.session-token-expires-at-ms": str(self.expires_at_ms),
        }


def _session_name(scope: TableScope) -> str:
    """Names the table in the store's audit log, within STS's 64 characters of ``[\\w+=,.@-]``."""
    return ("iceshelf-" + re.sub(r"[^\w+=,.@-]", "-", scope.prefix.rsplit("/", 1)[-1]))[:64]


class CredentialVendor:
    """Assumes the role per table scope and access level, and reuses a session for half its lifetime.

    pyiceberg loads a table before every operation; an AssumeRole round trip on each load would
    put STS on every client's hot path, while a session shared for half its life still leaves
    every client at least half of it to finish its work.
    """

    def __init__(self, s3: S3Settings, settings: CredentialSettings) -> None:
        self.s3 = s3
        self.settings = settings
        self._cache: dict[tuple[TableScope, bool], VendedCredentials] = {}
        self._lock = threading.Lock()
        self._sts = None

    @property
    def enabled(self) -> bool:
        return self.settings.role_arn is not None

    def _client(self):
        with self._lock:
            if self._sts is None:
                self._sts = botocore.session.get_session().create_client(
                    "sts",
                    endpoint_url=self.settings.sts_endpoint or self.s3.endpoint_url,
                    region_name=self.s3.region,
                    aws_access_key_id=self.s3.access_key_id,
                    aws_secret_access_key=self.s3.secret_access_key,
                    aws_session_token=self.s3.session_token,
                    # A load waits for this call: an unreachable STS must fail it fast, not hang it.
                    config=botocore.config.Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 2}),
                )
            return self._sts

    def vend(self, scope: TableScope, write: bool) -> VendedCredentials:
        now_ms = time.time() * 1000
        with self._lock:
            cached = self._cache.get((scope, write))
        if cached is not None and cached.expires_at_ms - now_ms > self.settings.duration_s * 500:
            return cached
        try:
            response = self._client().assume_role(
                RoleArn=self.settings.role_arn,
                RoleSessionName=_session_name(scope),
                Policy=json.dumps(session_policy(scope, write)),
                DurationSeconds=self.settings.duration_s,
            )
        except (ClientError, BotoCoreError) as exc:
            raise CredentialsUnavailable(f"Could not vend credentials: AssumeRole of {self.settings.role_arn} failed ({exc})") from None
        issued = response["Credentials"]
        vended = VendedCredentials(
            issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"], int(issued["Expiration"].timestamp() * 1000)
        )
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v.expires_at_ms > now_ms}
            self._cache[(scope, write)] = vended
        return vended
