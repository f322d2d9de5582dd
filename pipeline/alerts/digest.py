"""Digests: a digest rule's alerts are collected over its interval and sent as one message per channel.

The window opens with the rule's first match and closes ``digest`` later; :meth:`Digests.due` hands out the
windows that closed. Pending digests live in the worker's memory: a worker that dies loses the alerts of its
open windows (they are already marked as sent). See docs/alerting.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.alerts.rules import Rule
from pipeline.schemas import AlertEvent

__all__ = ["Digests"]


@dataclass
class _Window:
    rule: Rule
    closes_at: float
    alerts: list[AlertEvent] = field(default_factory=list)


class Digests:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: dict[str, _Window] = {}

    def add(self, rule: Rule, alert: AlertEvent) -> None:
        window = self._open.get(rule.name)
        if window is None:
            window = self._open[rule.name] = _Window(rule, self._clock() + rule.digest_interval().total_seconds())
        window.rule = rule  # the latest version of the rule delivers
        window.alerts.append(alert)

    def due(self, *, everything: bool = False) -> list[tuple[Rule, list[AlertEvent]]]:
        """The windows that closed (all of them with ``everything``, at shutdown), removed from the pending set."""
        now = self._clock()
        closed = [name for name, w in self._open.items() if everything or w.closes_at <= now]
        return [(w.rule, w.alerts) for w in (self._open.pop(name) for name in closed)]

    def __len__(self) -> int:
        return sum(len(w.alerts) for w in self._open.values())
