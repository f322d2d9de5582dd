from __future__ import annotations

from pathlib import Path

from pipeline.stack.process import dir_size


def test_dir_size_counts_blocks_on_disk_not_sparse_apparent_sizes(tmp_path: Path) -> None:
    # Kafka preallocates its index files sparse: their apparent size is not disk used.
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.log").write_bytes(b"x" * 100_000)
    with (tmp_path / "sparse.index").open("wb") as f:
        f.truncate(10 * 1024 * 1024)
    size = dir_size(tmp_path)
    assert 100_000 <= size < 1024 * 1024
