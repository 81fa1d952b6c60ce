"""The pure rules of access control: which grant reaches which resource, at which level."""

from __future__ import annotations

import pytest

from iceshelf.tables.access.grants import Grant, Level, Resource, allows, can_see
from iceshelf.tables.access.principals import NewCredentials, split_api_key
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.settings import AuthSettings

T = Resource("wh", ("sales", "eu"), "orders")

# (grant, level asked, resource, allowed)
CASES = [
    ("read:warehouse:wh", Level.READ, T, True),
    ("read:warehouse:*", Level.READ, T, True),
    ("read:warehouse:other", Level.READ, T, False),
    ("read:namespace:wh/sales", Level.READ, T, True),  # inherited by child namespaces
    ("read:namespace:wh/sales/eu", Level.READ, T, True),
    ("read:namespace:wh/sales/us", Level.READ, T, False),
    ("read:namespace:wh/sal", Level.READ, T, False),  # a prefix of a name is not a parent
    ("read:table:wh/sales/eu/orders", Level.READ, T, True),
    ("read:table:wh/sales/eu/orders", Level.READ, Resource("wh", ("sales", "eu"), "orders2"), False),
    ("read:table:wh/sales/eu/orders", Level.WRITE, T, False),
    ("write:table:wh/sales/eu/orders", Level.READ, T, True),  # write implies read
    ("write:namespace:wh/sales", Level.MAINTAIN, T, False),  # but not maintain
    ("maintain:namespace:wh/sales", Level.READ, T, True),
    ("maintain:namespace:wh/sales", Level.WRITE, T, False),
    ("admin:namespace:wh/sales", Level.MAINTAIN, T, True),
    ("admin:namespace:wh/sales", Level.WRITE, T, True),
    ("write:table:wh/sales/eu/orders", Level.WRITE, Resource("wh", ("sales", "eu")), False),  # not the namespace
    ("write:namespace:wh/sales", Level.WRITE, Resource("wh", ("sales",)).parent, False),  # nor the warehouse
]


@pytest.mark.parametrize("grant, level, resource, allowed", CASES)
def test_grant_reach(grant: str, level: Level, resource: Resource, allowed: bool) -> None:
    assert allows((Grant.parse(grant),), level, resource) is allowed


def test_visibility_reaches_up_to_what_is_granted_and_no_further() -> None:
    grants = (Grant.parse("read:table:wh/sales/eu/orders"),)
    assert can_see(grants, Resource("wh"))
    assert can_see(grants, Resource("wh", ("sales",)))
    assert can_see(grants, Resource("wh", ("sales", "eu")))
    assert not can_see(grants, Resource("wh", ("hr",)))
    assert not can_see(grants, Resource("wh", ("sales", "us")))
    assert not can_see(grants, Resource("other"))


@pytest.mark.parametrize("text", ["read", "read:namespace", "reed:namespace:wh/x", "read:shelf:wh", "read:table:wh/x", "read:warehouse:wh/x", "read:namespace:wh/../x"])
def test_malformed_grants_are_refused(text: str) -> None:
    with pytest.raises(BadRequestError):
        Grant.parse(text)


def test_grants_round_trip_through_their_text() -> None:
    for text in ("read:warehouse:*", "write:namespace:wh/a/b", "admin:table:wh/a/t"):
        assert Grant.parse(text).to_text() == text


def test_api_keys_carry_any_principal_name() -> None:
    for name in ("alice", "a.b:c", "ünï code"):
        assert split_api_key(NewCredentials(name, "s3cr3t").api_key) == (name, "s3cr3t")
    assert split_api_key("eyJhbGciOiJIUzI1NiJ9.e30.x") is None


@pytest.mark.parametrize("host, mode, enabled", [("127.0.0.1", "auto", False), ("localhost", "auto", False), ("0.0.0.0", "auto", True), ("10.1.2.3", "auto", True), ("127.0.0.1", "on", True), ("0.0.0.0", "off", False)])
def test_auth_is_on_beyond_loopback_unless_switched(host: str, mode: str, enabled: bool) -> None:
    assert AuthSettings(mode=mode).enabled_for(host) is enabled
