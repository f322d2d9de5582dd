"""pipeline.schemas: the MinHash signature header codec."""

from __future__ import annotations

from pipeline.dedupe import minhash_signature
from pipeline.schemas import decode_signature, encode_signature


def _signature(text: str) -> list[int]:
    return minhash_signature(text, num_perm=64, shingle_size=5)


def test_signature_header_round_trips_and_rejects_other_parameters() -> None:
    sig = _signature("NATO chief Mark Rutte said the alliance is ready to compromise")
    header = encode_signature(sig, 64, 5)
    assert decode_signature(header, 64, 5) == sig
    # Made with other parameters, truncated or absent: recomputed by the dedupe agent.
    assert decode_signature(header, 128, 5) is None
    assert decode_signature(header, 64, 4) is None
    assert decode_signature(header[:-8], 64, 5) is None
    assert decode_signature(None, 64, 5) is None
