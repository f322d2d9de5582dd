from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.feedlist import load_feeds
from pipeline.alerts.rules import Rule, load_rules
from pipeline.errors import SettingsError
from pipeline.listfile import read_yaml_list, validation_problems


def test_validation_problems_names_each_key() -> None:
    with pytest.raises(ValidationError) as caught:
        Rule.model_validate({"name": "bad name!", "query": "", "channels": {"email": ["nope"]}})
    text = validation_problems(caught.value, whole="rule")
    assert text.startswith("name: String should match pattern") and text.count("; ") >= 1


def test_read_yaml_list_reads_the_key_and_treats_empty_as_none(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("items:\n- a\n- b\n", encoding="utf-8")
    assert read_yaml_list(path, "items", what="list", not_a_list="no") == ["a", "b"]
    path.write_text("", encoding="utf-8")
    assert read_yaml_list(path, "items", what="list", not_a_list="no") == []


@pytest.mark.parametrize(("body", "message"), [
    (b"feeds: [\n", "not valid YAML"),
    (b"feeds:\n- url: \xed\xa0\x80\xff\n", "not UTF-8 text"),
    (b"feeds: 3\n", "`feeds` must be a list"),
    (b"- url: https://example.com/rss\n", "expected a mapping with a `feeds:` list, got list"),
])
def test_feed_list_and_rules_fail_alike(tmp_path: Path, body: bytes, message: str) -> None:
    feeds, rules = tmp_path / "feeds.yaml", tmp_path / "alerts.yaml"
    feeds.write_bytes(body)
    rules.write_bytes(body.replace(b"feeds", b"rules"))
    with pytest.raises(SettingsError, match=message):
        load_feeds(feeds)
    with pytest.raises(SettingsError, match=message.replace("`feeds` must", "'rules' must").replace("`feeds:`",
                                                                                                    "`rules:`")):
        load_rules(rules)


def test_unreadable_feed_list_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot be read"):
        load_feeds(tmp_path)  # a directory
    with pytest.raises(SettingsError, match="feed list not found"):
        load_feeds(tmp_path / "missing.yaml")
