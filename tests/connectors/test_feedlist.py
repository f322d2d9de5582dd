"""The feed list file, `feeds add` and OPML import."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.feedlist import FeedSpec, add_feed, import_opml, load_feeds, read_opml, resolve_url
from pipeline.errors import SettingsError
from pipeline.settings import PROJECT_ROOT

OPML = """<?xml version="1.0"?>
<opml version="2.0"><head><title>subs</title></head><body>
  <outline text="World">
    <outline type="rss" text="Wire" xmlUrl="https://wire.example/rss"/>
    <outline text="Europe"><outline type="rss" title="EU desk" xmlUrl="https://eu.example/atom"/></outline>
  </outline>
  <outline type="rss" text="Tech" xmlUrl="https://tech.example/feed.json"/>
  <outline type="rss" text="Broken" xmlUrl="javascript:alert(1)"/>
</body></opml>"""


def test_shipped_feed_list_resolves_demo_files() -> None:
    specs = load_feeds(PROJECT_ROOT / "config" / "feeds.yaml")
    assert len(specs) >= 4
    for spec in specs:
        assert spec.url.startswith("file:///") and Path(spec.url[len("file://"):]).exists()


def test_relative_file_urls_resolve_against_the_project_root() -> None:
    assert resolve_url("file:config/feeds.yaml") == (PROJECT_ROOT / "config" / "feeds.yaml").as_uri()
    assert resolve_url("https://x.example/rss") == "https://x.example/rss"


def test_entries_validated_with_readable_errors(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - url: https://a.example/rss\n    interval: 600\n    tags: [x]\n"
                    "  - https://b.example/rss\n  - url: https://a.example/rss\n")
    specs = load_feeds(path)
    assert [s.url for s in specs] == ["https://a.example/rss", "https://b.example/rss"]
    assert specs[0].interval == 600 and specs[0].tags == ["x"]
    path.write_text("feeds:\n  - url: ftp://nope\n")
    with pytest.raises(SettingsError, match="feed #1: url"):
        load_feeds(path)
    path.write_text("feeds:\n  - name: no url\n")
    with pytest.raises(SettingsError, match="feed #1"):
        load_feeds(path)
    with pytest.raises(SettingsError, match="not found"):
        load_feeds(tmp_path / "missing.yaml")


def test_add_feed_keeps_comments_and_refuses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("# my feeds\nfeeds:\n  - url: https://a.example/rss\n")
    assert add_feed(path, FeedSpec(url="https://b.example/rss", name="B", tags=["t"]))
    assert not add_feed(path, FeedSpec(url="https://b.example/rss"))
    assert path.read_text().startswith("# my feeds\n")
    assert [s.name for s in load_feeds(path)] == [None, "B"]
    fresh = tmp_path / "new.yaml"
    assert add_feed(fresh, FeedSpec(url="https://c.example/rss"))
    assert [s.url for s in load_feeds(fresh)] == ["https://c.example/rss"]


def test_opml_import_with_folders_as_tags(tmp_path: Path) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(OPML)
    specs = read_opml(opml)
    assert [(s.url, s.name, s.tags) for s in specs] == [
        ("https://wire.example/rss", "Wire", ["World"]),
        ("https://eu.example/atom", "EU desk", ["World", "Europe"]),
        ("https://tech.example/feed.json", "Tech", []),
    ]
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - url: https://wire.example/rss\n")
    assert import_opml(path, opml) == (2, 1)
    assert len(load_feeds(path)) == 3


def test_hostile_opml_is_refused(tmp_path: Path) -> None:
    opml = tmp_path / "evil.opml"
    opml.write_text('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body>&a;</body></opml>')
    with pytest.raises(SettingsError):
        read_opml(opml)


def test_cli_feeds_import_and_hostile_opml(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    feeds, opml, evil = tmp_path / "feeds.yaml", tmp_path / "subs.opml", tmp_path / "evil.opml"
    opml.write_text(OPML)
    evil.write_text('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body>&a;</body></opml>')
    runner = CliRunner()
    result = runner.invoke(app, ["feeds", "import", str(opml), "--feeds", str(feeds)])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and len(load_feeds(feeds)) >= 1
    again = runner.invoke(app, ["feeds", "import", str(opml), "--feeds", str(feeds)])
    assert again.exit_code == 0 and "imported 0 feeds" in again.output
    refused = runner.invoke(app, ["feeds", "import", str(evil), "--feeds", str(feeds)])
    assert refused.exit_code != 0 and "error" in refused.output
