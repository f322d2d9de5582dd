"""pipeline.malloc: glibc's mmap threshold fixed where the C library is glibc, nothing changed elsewhere.
(What it saves is measured by bench/dedupe_state.py, not here.)"""

from __future__ import annotations

import platform

import pytest

import pipeline.malloc
from pipeline.malloc import THRESHOLD, fix_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_threshold() -> None:
    assert THRESHOLD == 256 * 1024
    assert fix_mmap_threshold() is True


def test_without_a_c_library_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.malloc.ctypes.util, "find_library", lambda name: None)
    assert fix_mmap_threshold() is False
