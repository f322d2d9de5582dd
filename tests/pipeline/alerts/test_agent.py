"""The alert agent's rules watcher (pipeline.alerts.agent): reloads a changed file, keeps the rules on a bad one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.alerts.rules import Channels, Rule, load_rules, save_rules
from pipeline.errors import SettingsError
from pipeline.schemas import DeadLetter, utcnow


def test_rules_watcher_reloads_changes_and_keeps_rules_on_a_bad_file(tmp_path: Path) -> None:
    import os

    from pipeline.alerts.agent import RulesWatcher
    from pipeline.metrics import ALERT_RULE_RELOADS, ALERT_RULES

    def reloads(outcome: str) -> float:
        return ALERT_RULE_RELOADS.labels(outcome)._value.get()

    path = tmp_path / "alerts.yaml"
    watcher = RulesWatcher(path, msearch_chunk=10)
    assert watcher.rules == {} and not watcher.reload()
    save_rules(path, [Rule(name="a", query="energy", channels=Channels(log=True))])
    ok, errors = reloads("ok"), reloads("error")
    assert watcher.reload() and list(watcher.rules) == ["a"] and len(watcher.matcher.rules) == 1
    assert reloads("ok") == ok + 1 and ALERT_RULES._value.get() == 1
    assert not watcher.reload()  # unchanged
    path.write_text("rules: [{name: a}]\n")
    os.utime(path, ns=(1, 1))  # a different stamp even within the file system's time resolution
    assert not watcher.reload() and list(watcher.rules) == ["a"]  # invalid: the previous rules stay
    assert reloads("error") == errors + 1 and ALERT_RULES._value.get() == 1  # counted, still one rule
    save_rules(path, [Rule(name="b", query="flood", channels=Channels(log=True))])
    assert watcher.reload() and list(watcher.rules) == ["b"]


def test_a_rules_file_that_is_not_text_is_a_clear_error_and_keeps_the_rules(tmp_path: Path) -> None:
    from pipeline.alerts.agent import RulesWatcher

    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n- name: a\n  query: energy\n  channels: {log: true}\n", encoding="utf-8")
    watcher = RulesWatcher(path, msearch_chunk=50)
    watcher.reload()
    assert set(watcher.rules) == {"a"}
    path.write_bytes(b"rules:\n- name: \xed\xa0\x80\xff\n")  # not UTF-8
    with pytest.raises(SettingsError, match="not UTF-8 text"):
        load_rules(path)
    assert watcher.reload() is False and set(watcher.rules) == {"a"}  # logged, previous rules kept


class MessageSizeTooLargeError(Exception):
    """Named as both Kafka clients name it (pipeline.dlq recognises the error by its name)."""


class _IndexedTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def get_topic_name(self) -> str:
        return "news.indexed"

    async def send(self, *, key: bytes, value: bytes) -> object:
        if b"huge" in value:
            raise MessageSizeTooLargeError("too large")
        if b"broken" in value:
            raise RuntimeError("broker gone")
        self.sent.append((key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_indexed_hook_sends_each_article_by_story_and_dead_letters_one_too_large() -> None:
    from types import SimpleNamespace

    from pipeline.alerts.agent import indexed_hook
    from pipeline.schemas import EnrichedArticle
    from pipeline.settings import load_settings

    def article(n: int, title: str) -> EnrichedArticle:
        return EnrichedArticle(id=f"a{n}", story_id=f"s{n}", url=f"https://a.example/{n}", title=title, body="text",
                               feed_url="https://a.example/rss", text_fingerprint=f"f{n}", ingested_at=utcnow())

    letters: list[DeadLetter] = []

    async def send_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    app = SimpleNamespace(indexed_topic=_IndexedTopic())
    hook = indexed_hook(app, load_settings(environ={}), send_dead_letter)
    await hook([article(1, "one"), article(2, "huge"), article(3, "three")])
    assert [key for key, _ in app.indexed_topic.sent] == [b"s1", b"s3"]
    [letter] = letters
    assert (letter.stage, letter.kind, letter.topic, letter.key) == ("alert", "message_too_large", "news.indexed", "s2")
    with pytest.raises(RuntimeError):  # any other failure is the index agent's: its batch stays unacknowledged
        await hook([article(4, "broken")])
