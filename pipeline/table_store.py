"""RocksDB options for the worker's Faust tables (``pipeline.store: rocksdb://``): memory bounded by the settings.

Faust opens every table partition with 3 memtables of 64 MB, its own 2 GB block cache and the SST index and
filter blocks outside that cache, so a table's memory grows with the data it holds. Here every table of the
worker shares one LRU block cache of ``pipeline.table_block_cache_mb`` that also holds the index and filter
blocks, and memtables are ``pipeline.table_write_buffers`` x ``pipeline.table_write_buffer_mb``: the tables'
memory is bounded whatever they hold (docs/dedupe.md). ``bench/dedupe_state.py`` opens its store with the same
:func:`rocksdb_options`, so its figures are the worker's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import faust
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from yarl import URL

from pipeline.settings import PipelineSettings

if TYPE_CHECKING:
    import rocksdict

__all__ = ["BoundedRocksDBOptions", "NewsflowTable", "TableMemoryCollector", "report_table_memory", "rocksdb_options"]

# A full (not block-based) Bloom filter per SST file: ~1 % false positives, so the look-up of a URL or a
# fingerprint never seen (two per new article) reads no data block.
_BLOOM_BITS_PER_KEY = 10


def rocksdb_options(settings: PipelineSettings, cache: rocksdict.Cache) -> rocksdict.Options:
    """Options for one table's RocksDB database, its blocks cached in ``cache`` (shared by the worker's tables).

    Raw mode as Faust opens them (bytes keys and values).
    """
    import rocksdict

    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(settings.table_write_buffer_mb << 20)
    options.set_max_write_buffer_number(settings.table_write_buffers)
    table = rocksdict.BlockBasedOptions()
    table.set_block_cache(cache)
    table.set_bloom_filter(_BLOOM_BITS_PER_KEY, False)
    # Index and filter blocks inside the cache: outside it (RocksDB's default) they stay resident for every
    # open SST file, growing with the data. Partitioned into 4 KB blocks under a small pinned top level: one
    # index or filter block per 64 MB file is ~1 MB at a million keys, larger than a shard of the cache, so it
    # was read from disk again on every look-up (measured: one 1.1 MB read per decision).
    table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
    table.set_partition_filters(True)
    table.set_metadata_block_size(4096)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_top_level_index_and_filter(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    return options


class BoundedRocksDBOptions(RocksDBOptions):
    """Faust's :class:`RocksDBOptions` with :func:`rocksdb_options` for every database it opens."""

    def __init__(self, settings: PipelineSettings, cache: rocksdict.Cache, **kwargs: Any) -> None:
        super().__init__(use_rocksdict=True, **kwargs)
        self.settings = settings
        self.cache = cache

    def as_options(self) -> rocksdict.Options:
        return rocksdb_options(self.settings, self.cache)


class NewsflowTable(faust.Table):  # type: ignore[type-arg]  # Faust's Table is generic in its stubs only
    """A Faust table whose RocksDB store uses the worker's bounded options (``create_app`` sets ``Table=``)."""

    def _new_store_by_url(self, url: str | URL) -> Any:
        store = super()._new_store_by_url(url)
        if isinstance(store, RocksDBStore) and store.use_rocksdict:
            # The NewsflowApp holds the settings and the one cache shared by all its tables.
            store.rocksdb_options = BoundedRocksDBOptions(
                self.app.settings.pipeline, self.app.table_cache(), ttl=store.rocksdb_options.ttl)  # type: ignore[attr-defined]
        return store


def report_table_memory(app: Any) -> None:
    """Export ``app``'s table memory in the process's metrics (:class:`TableMemoryCollector`; registered once per
    process, the last app built is the one reported)."""
    global _collector
    if _collector is None:
        from prometheus_client import REGISTRY

        _collector = TableMemoryCollector(app)
        REGISTRY.register(_collector)
    _collector.app = app


class TableMemoryCollector:
    """Prometheus collector: what the worker's RocksDB tables hold in memory, read from RocksDB at each scrape.

    ``newsflow_table_memtable_bytes`` (every table partition's memtables; bounded by ``table_write_buffers`` x
    ``table_write_buffer_mb`` per table partition) and ``newsflow_table_block_cache_bytes`` (the one shared block
    cache with the index and filter blocks; bounded by ``table_block_cache_mb``): the part of a worker's resident
    memory that is its tables (docs/soak.md). Nothing with ``memory://`` (the tables are Python dicts there).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> list[Any]:
        return []  # collected lazily: registering must not open the stores

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        memtables = 0
        for table in list(self.app.tables.values()):
            store = getattr(table, "_data", None)  # the store once opened (Faust's Collection keeps it there)
            if isinstance(store, RocksDBStore):
                # faust-streaming 0.15 keeps one rocksdict per partition in ``_dbs`` (no public accessor).
                for db in list(getattr(store, "_dbs", {}).values()):
                    memtables += int(db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0)
        cache = self.app._table_cache  # None until a rocksdb:// table opened
        yield GaugeMetricFamily("newsflow_table_memtable_bytes",
                                "Bytes in the RocksDB memtables of the worker's tables", value=memtables)
        yield GaugeMetricFamily("newsflow_table_block_cache_bytes",
                                "Bytes in the worker's shared RocksDB block cache (data, index and filter blocks)",
                                value=int(cache.get_usage()) if cache is not None else 0)


_collector: TableMemoryCollector | None = None
