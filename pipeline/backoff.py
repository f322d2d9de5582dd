"""The one exponential-backoff formula of the pipeline's stages: doubling, capped, jittered."""

from __future__ import annotations

import random

__all__ = ["backoff_delay", "kafka_start_delay"]


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, min_fraction: float = 0.8,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``initial_s * 2**attempt`` capped at ``max_s``, times a random ``min_fraction``..1.0 so that several
    workers, channels or feeds failing together do not retry in lockstep. The feed schedule uses 0.5
    ("equal jitter": its delays are long and many feeds can fail at once); the stages keep close to the cap.
    """
    delay = min(max_s, initial_s * (2.0 ** min(max(attempt, 0), 30)))
    return delay * (rng or random).uniform(min_fraction, 1.0)


def kafka_start_delay(attempt: int) -> float:
    """Seconds a worker or connector started before Kafka (or during an outage) waits before start-up attempt
    ``attempt + 2``: 1 s doubling up to 30 s. Without jitter: each process waits alone, and this is the schedule
    both start-up loops always had."""
    return backoff_delay(attempt, initial_s=1.0, max_s=30.0, min_fraction=1.0)
