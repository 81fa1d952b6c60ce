"""The second wall: a pooled DuckDB session refuses file access, settings changes and extension
loads on its own, even for statements the parser would never let through.

These run real DuckDB sessions over a real local warehouse directory, with plans built by hand so
the parser is bypassed on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iceshelf.catalog.settings import Settings
from iceshelf.sql.check import check
from iceshelf.sql.engine import Engine
from iceshelf.sql.errors import QueryFailedError
from iceshelf.sql.rewrite import Plan
from iceshelf.sql.settings import SqlSettings


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sandbox")
    settings = Settings(warehouses={"default": str(root / "warehouse")}, sql=SqlSettings(read_only=True, pool_size=1, memory_limit="1GB"))
    warehouses = settings.open_warehouses()
    engine = Engine(settings.sql_engine(), warehouses)
    yield engine, root
    engine.close()
    warehouses.close()


def raw(text: str) -> Plan:
    return Plan(check("SELECT 1"), (text,))


ATTACKS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM \"/etc/passwd\"",
    "SELECT content FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('{root}/x.parquet')",
    "COPY (SELECT 42) TO '{root}/out.csv'",
    "ATTACH '{root}/attached.db' AS other",
    "SELECT getenv('HOME')",
    "SET enable_external_access = true",
    "SET memory_limit = '100GB'",
    "RESET lock_configuration",
    "INSTALL spatial",
    "LOAD spatial",
    "SELECT * FROM python_frame_variable",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_engine_refuses_without_the_parser(engine, attack: str) -> None:
    engine, root = engine
    python_frame_variable = [1, 2, 3]  # noqa: F841 - what a Python replacement scan would find
    with engine.session() as session:
        with pytest.raises(QueryFailedError):
            session.run(raw(attack.format(root=root)), {})
        assert session.run(raw("SELECT 42 AS x"), {}).table.to_pylist() == [{"x": 42}]
    assert not (root / "out.csv").exists() and not (root / "attached.db").exists()


def test_memory_limit_and_lock_hold(engine) -> None:
    engine, _ = engine
    with engine.session() as session:
        settings = session.run(raw("SELECT current_setting('memory_limit') AS m, current_setting('lock_configuration') AS l"), {})
    assert settings.table.to_pylist() == [{"m": "953.6 MiB", "l": True}]  # 1GB, as DuckDB spells it
    assert Path("/etc/passwd").exists()  # the attacks above failed for the sandbox, not for a missing file
