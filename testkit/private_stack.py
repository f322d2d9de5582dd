"""Settings for a server of one test's own (a Kafka broker, an Elasticsearch node) beside the shared stack, so that
a test may stop it without touching anybody else's."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.settings import Settings, load_settings

__all__ = ["private_settings"]


@contextmanager
def private_settings(stack: Settings, name: str, **environ: str) -> Iterator[Settings]:
    """Settings with a data dir of their own (removed on exit) and ``environ`` (``NEWSFLOW_*``: ports, heap).

    The data dir is under the project's data dir (not /root, which the Elasticsearch node's user cannot traverse),
    and the cached distributions are shared, so nothing is downloaded.
    """
    data_dir = stack.data_path / f"test-{name}-{uuid.uuid4().hex[:8]}"
    try:
        yield load_settings(environ={
            "NEWSFLOW_DATA_DIR": str(data_dir),
            "NEWSFLOW_STACK_CACHE_DIR": str(stack.cache_path),
            **environ,
        })
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
