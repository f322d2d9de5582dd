"""The feed list: read ``config/feeds.yaml`` into validated FeedSpecs, add feeds, import OPML.

Format::

    feeds:
      - url: https://example.com/rss.xml     # required: http(s):// or file:
        name: Example News                    # optional, shown in `newsflow feeds list`
        interval: 600                         # optional seconds (default poll.interval_s); adapts from there
        tags: [world, politics]               # optional, copied onto every item
        fetch_article: true                   # optional (default poll.fetch_article): fetch pages of summary-only items
        language: en                          # optional hint, wins over the feed's own

``file:`` URLs with a relative path (``file:config/demo/wire.xml``) are resolved against the project
root, so the shipped list works from any checkout and any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from defusedxml import ElementTree as SafeET
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import SettingsError
from pipeline.listfile import read_yaml_list, validation_problems
from pipeline.settings import PROJECT_ROOT

__all__ = ["FeedSpec", "add_feed", "import_opml", "load_feeds", "read_opml", "resolve_url"]


def resolve_url(url: str, root: Path = PROJECT_ROOT) -> str:
    """An absolute URL: ``file:relative/path`` becomes ``file:///<root>/relative/path``."""
    url = url.strip()
    if url.startswith("file:") and not url.startswith("file:/"):
        return (root / url[len("file:"):]).resolve().as_uri()
    return url


class FeedSpec(BaseModel):
    """One entry of the feed list, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    name: str | None = None
    interval: int | None = Field(None, ge=1)  # seconds
    tags: list[str] = Field(default_factory=list)
    fetch_article: bool | None = None  # None: poll.fetch_article
    language: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = resolve_url(value)
        parts = urlsplit(value)
        if parts.scheme == "file" and parts.path:
            return value
        if parts.scheme in ("http", "https") and parts.hostname:
            return value
        raise ValueError(f"must be an http(s):// or file: URL (got {value!r})")


def load_feeds(path: Path) -> list[FeedSpec]:
    """Read and validate a feed list file; duplicates (same resolved URL) are kept once.

    Raises:
        SettingsError: a missing, unreadable or non-UTF-8 file, bad YAML or an invalid entry, naming the entry.
    """
    entries = read_yaml_list(path, "feeds", what="feed list",
                             not_a_list="`feeds` must be a list of entries with a `url`")
    specs: dict[str, FeedSpec] = {}
    for n, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            entry = {"url": entry}
        try:
            spec = FeedSpec.model_validate(entry)
        except ValidationError as exc:
            raise SettingsError(f"{path}: feed #{n}: {validation_problems(exc, whole='entry')}") from exc
        specs.setdefault(spec.url, spec)
    return list(specs.values())


def _append(path: Path, entries: list[dict[str, Any]]) -> None:
    """Append entries, keeping the file's comments when it is a plain ``feeds:`` list (the usual case)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    if data is None or (isinstance(data, dict) and set(data) == {"feeds"}):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if "feeds:" not in text:
            text += ("" if not text or text.endswith("\n") else "\n") + "feeds:\n"
        if text and not text.endswith("\n"):
            text += "\n"
        block = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, default_flow_style=None)
        text += "".join(f"  {line}\n" for line in block.splitlines())
    else:
        data.setdefault("feeds", []).extend(entries)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def add_feed(path: Path, spec: FeedSpec) -> bool:
    """Add one feed to the list file; False when its URL is already there."""
    existing = {s.url for s in load_feeds(path)} if path.exists() else set()
    if spec.url in existing:
        return False
    _append(path, [spec.model_dump(exclude_none=True, exclude_defaults=True) | {"url": spec.url}])
    return True


def read_opml(opml_file: Path) -> list[FeedSpec]:
    """The feeds of an OPML subscription list; an outline's parent folders become tags."""
    try:
        root = SafeET.parse(str(opml_file)).getroot()
    except (OSError, SafeET.ParseError) as exc:
        raise SettingsError(f"{opml_file}: not a readable OPML file: {exc}") from exc
    except Exception as exc:  # defusedxml's refusals (entities, DTDs)
        raise SettingsError(f"{opml_file}: refused: {exc}") from exc
    if root is None:  # the parser raises on a document without a root element; this is for the type checker
        raise SettingsError(f"{opml_file}: not a readable OPML file: no root element")
    specs: list[FeedSpec] = []

    def walk(node: Any, folders: list[str]) -> None:
        for outline in node.findall("outline"):
            url = outline.get("xmlUrl") or outline.get("xmlurl")
            label = outline.get("title") or outline.get("text")
            if url:
                try:
                    specs.append(FeedSpec.model_validate({"url": url, "name": label, "tags": list(folders)}))
                except ValidationError:
                    continue  # an odd URL in someone's OPML is skipped, not fatal
            else:
                walk(outline, [*folders, label] if label else folders)

    body = root.find("body")
    walk(body if body is not None else root, [])
    return specs


def import_opml(path: Path, opml_file: Path) -> tuple[int, int]:
    """Add an OPML file's feeds to the list; returns (added, already present)."""
    existing = {s.url for s in load_feeds(path)} if path.exists() else set()
    new = [s for s in read_opml(opml_file) if s.url not in existing]
    unique = list({s.url: s for s in new}.values())
    if unique:
        _append(path, [s.model_dump(exclude_none=True, exclude_defaults=True) | {"url": s.url} for s in unique])
    return len(unique), len(read_opml(opml_file)) - len(unique)
