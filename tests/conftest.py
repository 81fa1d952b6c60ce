"""Shared fixtures."""

from __future__ import annotations

import pytest

from bench.servers.seaweed import SeaweedServer, start_seaweed


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> SeaweedServer:
    """One SeaweedFS (``weed mini``) for the whole session; tests isolate themselves by bucket or prefix."""
    with start_seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


# -- Iceshelf servers on each kind of warehouse ---------------------------------------------------

from bench.servers.iceshelf import start_iceshelf  # noqa: E402
from tests.clients import CatalogEnv, unique_name  # noqa: E402


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> CatalogEnv:
    root = tmp_path_factory.mktemp("local-warehouse")
    server = start_iceshelf(str(root / "warehouse"), root)
    yield CatalogEnv("local", server, str(root / "warehouse"))
    server.stop()


@pytest.fixture(scope="session")
def s3_env(seaweed: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> CatalogEnv:
    warehouse = f"s3://{seaweed.create_bucket()}/warehouse"
    env = CatalogEnv("s3", None, warehouse, seaweed)  # type: ignore[arg-type]
    env.server = start_iceshelf(warehouse, tmp_path_factory.mktemp("s3-server"), env.s3_env())
    yield env
    env.server.stop()


@pytest.fixture(params=["local", "s3"])
def catalog_env(request: pytest.FixtureRequest) -> CatalogEnv:
    """Every test that takes this runs against the local warehouse and against SeaweedFS."""
    return request.getfixturevalue(f"{request.param}_env")


@pytest.fixture
def namespace(catalog_env: CatalogEnv) -> str:
    """A fresh namespace per test, so tests share servers without sharing state."""
    name = unique_name()
    catalog_env.catalog().create_namespace(name)
    return name
