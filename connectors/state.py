"""Per-feed state in the data dir: validators, published item ids, errors, schedule. Saved atomically."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.logs import get_logger
from pipeline.schemas import RawItem

__all__ = ["FeedState", "StateStore", "distinct", "identity", "item_id"]

log = get_logger(__name__)


def identity(guid: str | None, canonical_link: str | None, link: str | None, title: str | None,
             summary: str | None) -> str:
    """The identity used to decide whether an item is new: guid, else canonical link, else link, else title+summary.

    Like Miniflux's entry hash; kept short so thousands of ids per feed stay cheap to store.
    """
    basis = guid or canonical_link or link or f"{title or ''}\x00{summary or ''}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:20]


def item_id(item: RawItem) -> str:
    """:func:`identity` of a RawItem."""
    return identity(item.guid, item.canonical_link, item.link, item.title, item.summary)


def distinct(items: list[RawItem]) -> list[RawItem]:
    """The first item of each :func:`item_id`: a document that lists an item twice publishes it once."""
    ids: set[str] = set()
    out = []
    for item in items:
        iid = item_id(item)
        if iid not in ids:
            ids.add(iid)
            out.append(item)
    return out


class FeedState(BaseModel):
    """Everything remembered about one feed between polls and restarts."""

    model_config = ConfigDict(extra="ignore")

    url: str
    title: str | None = None
    moved_to: str | None = None  # a permanent redirect target, fetched instead of url
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # for servers that ignore conditional GET
    seen: list[str] = Field(default_factory=list)  # item_id()s published, oldest first
    items_published: int = 0
    polls: int = 0
    error_count: int = 0  # consecutive failures; 0 after a success
    errors_total: int = 0
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: str | None = None  # ok / not_modified / error
    last_checked_at: datetime | None = None
    next_check_at: datetime | None = None
    interval_s: float | None = None  # the adapted interval last used
    article_fetch_failures: int = 0

    @property
    def health(self) -> str:
        """``ok`` (the last poll succeeded, or nothing changed), ``failing`` or ``not polled``."""
        return {"ok": "ok", "not_modified": "ok", "error": "failing"}.get(self.last_status or "", "not polled")

    def record_failure(self, kind: str, error: str, at: datetime) -> None:
        """A refresh that failed: counted (``error_count`` until the next success) with its kind, message and time."""
        self.error_count += 1
        self.errors_total += 1
        self.last_status = "error"
        self.last_error, self.last_error_kind, self.last_error_at = error, kind, at

    def mark_seen(self, items: list[RawItem], cap: int) -> None:
        """Remember published items; forget the oldest beyond ``cap`` (far more than a feed ever lists)."""
        known = set(self.seen)
        self.seen.extend(i for i in (item_id(x) for x in items) if i not in known)
        if len(self.seen) > cap:
            del self.seen[: len(self.seen) - cap]


class StateStore:
    """One JSON file per feed under ``<data_dir>/feeds``; written to a temp file then ``os.replace``d."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, url: str) -> Path:
        return self.directory / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()[:24]}.json"

    def load(self, url: str) -> FeedState:
        path = self._path(url)
        try:
            return FeedState.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return FeedState(url=url)
        except (OSError, ValidationError, ValueError) as exc:
            # A damaged file must not stop the connector; the worst case is re-publishing that feed's items.
            log.warning("feed state unreadable, starting fresh", feed_url=url, error=str(exc))
            return FeedState(url=url)

    def save(self, state: FeedState) -> None:
        path = self._path(state.url)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(state.model_dump_json(), encoding="utf-8")
        os.replace(tmp, path)

    def all(self) -> list[FeedState]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append(FeedState.model_validate(json.loads(path.read_bytes())))
            except (OSError, ValidationError, ValueError):
                continue
        return out
