"""The one exponential-backoff formula of the pipeline's stages: doubling, capped, jittered."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, initial_s: float, max_s: float) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``initial_s * 2**attempt`` capped at ``max_s``, times a random 0.8..1.0 so that several workers (or
    channels) failing together do not retry in lockstep.
    """
    delay = min(max_s, initial_s * (2 ** min(max(attempt, 0), 30)))
    return delay * random.uniform(0.8, 1.0)
