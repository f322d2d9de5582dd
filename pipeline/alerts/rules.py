"""Alert rules: the YAML rules file (``alerts.rules_file``), its model, and the per-rule statistics' model.

A rule is a ``newsflow search`` query plus optional filters, where to deliver, and when (``instant`` or a
``digest`` every interval). The file is the one source of truth: ``newsflow alerts add/remove`` rewrite it
atomically and running workers reload it when its modification time changes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import search
from pipeline.errors import SettingsError
from pipeline.listfile import read_yaml_list, validation_problems
from pipeline.search import SearchResult, parse_since
from pipeline.settings import Settings

__all__ = ["Channels", "Rule", "RuleStats", "add_rule", "find_rule", "load_rules", "remove_rule", "rule_from_options",
           "rule_matches", "rules_path", "save_rules", "validate_query"]


class Channels(BaseModel):
    """Where a rule's alerts go; at least one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook: str | None = Field(None, pattern=r"^https?://")
    slack: str | None = Field(None, pattern=r"^https?://")
    email: list[str] = Field(default_factory=list)
    topic: bool = False  # news.alerts (AlertEvent JSON)
    log: bool = False

    @field_validator("email", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def names(self) -> list[str]:
        """The channel names in use, in a fixed order (also the ``channel`` metric label values)."""
        return [n for n, on in (("webhook", self.webhook), ("slack", self.slack), ("email", self.email),
                                ("topic", self.topic), ("log", self.log)) if on]


class Rule(BaseModel):
    """One alert rule (one entry of the rules file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,79}$")
    query: str = Field(min_length=1, max_length=4000)
    source: str | None = None
    language: str | None = None
    entity: str | None = None
    tags: list[str] = Field(default_factory=list)
    channels: Channels
    mode: Literal["instant", "digest"] = "instant"
    digest: str | None = None  # the interval of a digest rule: 30m, 1h, 1d
    # HMAC-SHA256 key of the webhook signature; it lives in the rules file, so keep that file private.
    secret: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not self.channels.names():
            raise ValueError("a rule needs at least one channel")
        if self.mode == "digest":
            if not self.digest:
                raise ValueError("a digest rule needs an interval (digest: 1h)")
            self.digest_interval()  # raises on a bad interval
        elif self.digest:
            raise ValueError("digest interval given for an instant rule (set mode: digest)")
        return self

    def search_filters(self) -> dict[str, Any]:
        """The rule's filters as options of :func:`pipeline.search.build_search` (the one place they are named)."""
        return {"source": self.source, "entity": self.entity, "language": self.language, "feed_tags": self.tags}

    def digest_interval(self) -> timedelta:
        if not self.digest:
            return timedelta(0)
        try:
            interval = parse_since(self.digest)
        except Exception as exc:
            raise ValueError(f"digest interval must be like 30m, 1h or 1d (got {self.digest!r})") from exc
        if interval < timedelta(seconds=1):
            raise ValueError("digest interval must be at least 1s")
        return interval


def rule_from_options(name: str, query: str, *, webhook: str | None = None, slack: str | None = None,
                      email: list[str] | None = None, topic: bool = False, log: bool = False, digest: str | None = None,
                      secret: str | None = None, source: str | None = None, language: str | None = None,
                      entity: str | None = None, tags: list[str] | None = None) -> Rule:
    """The rule of ``newsflow alerts add``'s options: a digest rule when ``digest`` (its interval) is given, and
    alerting on the log when no delivering channel (webhook, slack, email, topic) is.

    Raises:
        ValidationError: an option is invalid (a bad name, URL or interval).
    """
    channels: dict[str, Any] = {"webhook": webhook, "slack": slack, "email": email or [], "topic": topic,
                                "log": log or not (webhook or slack or email or topic)}
    return Rule.model_validate({"name": name, "query": query, "source": source, "language": language,
                                "entity": entity, "tags": tags or [], "channels": channels,
                                "mode": "digest" if digest else "instant", "digest": digest, "secret": secret})


def rules_path(settings: Settings) -> Path:
    return settings.path(settings.alerts.rules_file)


def load_rules(path: Path) -> list[Rule]:
    """The rules in ``path`` (a missing file means none).

    Raises:
        SettingsError: the file is not valid YAML or a rule is invalid (the message names the rule and key).
    """
    if not path.exists():
        return []
    entries = read_yaml_list(path, "rules", what="rules file", not_a_list="'rules' must be a list")
    rules: list[Rule] = []
    for n, entry in enumerate(entries, 1):
        try:
            rules.append(Rule.model_validate(entry))
        except ValidationError as exc:
            what = entry.get("name") if isinstance(entry, dict) else None
            details = validation_problems(exc, whole="rule")
            raise SettingsError(f"{path}: rule {n} ({what or 'no name'}): {details}") from exc
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise SettingsError(f"{path}: rule names must be unique")
    return rules


def save_rules(path: Path, rules: list[Rule]) -> None:
    """Rewrite the file atomically (a worker reloading it never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"rules": [r.model_dump(mode="json", exclude_none=True, exclude_defaults=True) for r in rules]}
    text = "# Keyword alert rules: see docs/alerting.md. Managed by `newsflow alerts add/remove`.\n"
    text += yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def add_rule(path: Path, rule: Rule, *, replace: bool) -> bool:
    """Append ``rule`` to the rules file; False (the file untouched) when a rule of its name exists and not
    ``replace``. A replaced rule moves to the end."""
    rules = load_rules(path)
    if any(r.name == rule.name for r in rules) and not replace:
        return False
    save_rules(path, [r for r in rules if r.name != rule.name] + [rule])
    return True


def remove_rule(path: Path, name: str) -> bool:
    """Remove the rule ``name`` from the rules file; False (the file untouched) when there is none."""
    rules = load_rules(path)
    if not any(r.name == name for r in rules):
        return False
    save_rules(path, [r for r in rules if r.name != name])
    return True


def find_rule(path: Path, name: str) -> Rule | None:
    return next((r for r in load_rules(path) if r.name == name), None)


def validate_query(settings: Settings, rule: Rule) -> str | None:
    """The parser's message for a query Elasticsearch would refuse, or None when it is valid.

    Elasticsearch's own parser decides (``_validate/query`` of the very query ``newsflow search`` sends, on the
    read alias); without a server or an index yet, luqum's Lucene-syntax parser does.
    """
    # Imported here: loading the rules file (every worker, connector-free commands) needs no Elasticsearch client.
    from elasticsearch import ApiError, NotFoundError, TransportError

    from pipeline.alerts.matcher import rule_search  # the matcher imports this module
    from pipeline.alerts.query import syntax_error
    from pipeline.index import make_client

    es = make_client(settings.es)
    try:
        resp = es.indices.validate_query(index=settings.es.alias, query=rule_search(rule)["query"], explain=True)
    except (NotFoundError, TransportError):  # no index yet, or no server: the local parser decides
        return syntax_error(rule.query)
    except ApiError as exc:
        return f"refused by Elasticsearch ({exc.meta.status}): {exc.message}"
    finally:
        es.close()
    if resp.get("valid"):
        return None
    errors = [e.get("error") for e in resp.get("explanations", []) if e.get("error")]
    text = str(resp.get("error") or (errors[0] if errors else "invalid query"))
    # "...QueryShardException[...]; nested: ParseException[Cannot parse 'a AND (': Encountered "<EOF>" at line 1,
    # column 7. ...]": keep the parser's own sentence, which names the position.
    start = text.rfind("Cannot parse")
    return text[start:].split("; nested:")[0].rstrip("]") if start >= 0 else text


def rule_matches(settings: Settings, *, name: str | None = None, query: str | None = None,
                 since: timedelta | None = None, limit: int = 20) -> SearchResult | None:
    """What ``newsflow alerts test`` shows: the indexed articles (one per story) that the rule ``name`` (its query
    and filters), or a bare ``query``, matches now, newest first: exactly what ``newsflow search`` finds. None when
    the rules file has no rule ``name``.

    Raises:
        ValueError: not exactly one of ``name`` and ``query``.
        SearchRefused: Elasticsearch refused the query; SearchError: no index yet, or the server unreachable.
    """
    if (name is None) == (query is None):
        raise ValueError("give exactly one of name and query")
    options: dict[str, Any] = {}
    if name is not None:
        rule = find_rule(rules_path(settings), name)
        if rule is None:
            return None
        query, options = rule.query, rule.search_filters()
    assert query is not None
    return search.search_index(settings, query, since=since, limit=limit, **options)


class RuleStats(BaseModel):
    """What ``newsflow alerts list`` shows for a rule (read by :func:`pipeline.alerts.stats.read_stats`)."""

    matches: int = 0  # stories alerted
    last_fired: str | None = None  # ISO time of the last alert
