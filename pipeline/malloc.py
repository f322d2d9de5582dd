"""One process-wide allocator setting for workers that hold large numpy arrays (the dedupe index).

glibc raises its mmap threshold every time a large block is freed (up to 32 MB), after which arrays of a few
MB come from the heap: the index's merges then leave holes in the heap that stay resident. Measured with
``bench/dedupe_state.py`` at 200,000 articles: 624 bytes of resident growth per article with the default,
503 with a fixed threshold (the same as ``malloc_trim`` after the run). A fixed threshold puts every block of
256 KB or more in its own mapping, returned to the system when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from pipeline.logs import get_logger

__all__ = ["fix_mmap_threshold"]

log = get_logger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc malloc.h
THRESHOLD = 256 * 1024


def fix_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False (and nothing changed) where libc is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.info("mmap threshold left to the allocator", reason="no glibc mallopt")
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
