"""The worker's RocksDB tables open with the settings' bounded options and one shared block cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.app import create_app
from pipeline.settings import load_settings
from pipeline.table_store import BoundedRocksDBOptions

rocksdict = pytest.importorskip("rocksdict", reason="extra rocksdb not installed")


def _app(tmp_path: Path, store: str, **env: str) -> object:
    environ = {"NEWSFLOW_DATA_DIR": str(tmp_path), "NEWSFLOW_PIPELINE_STORE": store, **env}
    return create_app(load_settings(environ=environ), web_port=0)


def test_dedupe_tables_share_one_bounded_cache(tmp_path: Path) -> None:
    app = _app(tmp_path, "rocksdb://", NEWSFLOW_PIPELINE_TABLE_BLOCK_CACHE_MB="16")
    tables = [app.url_table, app.fingerprint_table, app.signature_table]  # type: ignore[attr-defined]
    options = [t.data.rocksdb_options for t in tables]
    assert all(isinstance(o, BoundedRocksDBOptions) for o in options)
    assert {id(o.cache) for o in options} == {id(app.table_cache())}  # type: ignore[attr-defined]

    db = app.signature_table.data._db_for_partition(0)  # type: ignore[attr-defined]  # Faust's own open path
    try:
        db[b'"a"'] = b'{"story_id": "a"}'
        assert db[b'"a"'] == b'{"story_id": "a"}'
        # Index and filter blocks are charged to the shared cache (RocksDB's default keeps them outside).
        db.flush()
        assert db[b'"a"'] == b'{"story_id": "a"}'
        assert (db.property_int_value("rocksdb.block-cache-usage") or 0) > 0
        assert db.property_int_value("rocksdb.block-cache-capacity") == 16 << 20
    finally:
        db.close()


def test_memory_store_is_left_alone(tmp_path: Path) -> None:
    app = _app(tmp_path, "memory://")
    assert not hasattr(app.signature_table.data, "rocksdb_options")  # type: ignore[attr-defined]


def test_tables_written_with_fausts_defaults_open_with_the_bounded_options(tmp_path: Path) -> None:
    """An upgraded worker reopens its existing tables: the SSTs written with Faust's options (binary-search index,
    block-based filter) read back under the partitioned index and filters."""
    from faust.stores.rocksdb import RocksDBOptions

    path = tmp_path / "old.db"
    old = RocksDBOptions(use_rocksdict=True).open(path)
    for i in range(2000):
        old[f'"k{i}"'.encode()] = f'{{"n": {i}}}'.encode()
    old.flush()
    old.close()

    app = _app(tmp_path, "rocksdb://")
    db = app.signature_table.data.rocksdb_options.open(path)  # type: ignore[attr-defined]
    try:
        assert db[b'"k1999"'] == b'{"n": 1999}'
        assert db.get(b'"missing"') is None
        db[b'"new"'] = b"{}"
        db.flush()
        assert sum(1 for _ in db.keys()) == 2001  # noqa: SIM118  (Rdict's stubs declare keys(), not __iter__)
    finally:
        db.close()


def test_table_memory_is_reported_from_rocksdb(tmp_path: Path) -> None:
    """newsflow_table_memtable_bytes and newsflow_table_block_cache_bytes: what RocksDB itself says it holds."""
    from pipeline.table_store import TableMemoryCollector

    app = _app(tmp_path, "rocksdb://")

    def sample() -> dict[str, float]:
        return {m.name: m.samples[0].value for m in TableMemoryCollector(app).collect()}

    assert sample() == {"newsflow_table_memtable_bytes": 0, "newsflow_table_block_cache_bytes": 0}  # nothing open
    db = app.signature_table.data._db_for_partition(0)  # type: ignore[attr-defined]
    try:
        for i in range(2000):
            db[f'"k{i}"'.encode()] = b"x" * 500
        memtables = sample()["newsflow_table_memtable_bytes"]
        assert memtables > 2000 * 500  # the writes sit in the memtable until a flush
        db.flush()
        assert db[b'"k1"'] == b"x" * 500
        after = sample()
        assert after["newsflow_table_memtable_bytes"] < memtables
        assert after["newsflow_table_block_cache_bytes"] > 0
    finally:
        db.close()
