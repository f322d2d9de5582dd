"""The command line's error handling: every NewsflowError becomes one line on stderr and an exit code, in one place.

No server: commands that would reach one are given unreachable addresses or have the call replaced.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import pipeline.search
from pipeline.alerts.rules import Channels, Rule, save_rules
from pipeline.cli import app
from pipeline.errors import SearchError, SearchRefused


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"NEWSFLOW_ES_URL": "http://127.0.0.1:1", "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "NEWSFLOW_DATA_DIR": str(tmp_path / "data"), "NEWSFLOW_ALERTS_RULES_FILE": str(tmp_path / "alerts.yaml"),
            "NEWSFLOW_FEEDS": str(tmp_path / "feeds.yaml")}


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def _error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("newsflow:")]


def test_a_settings_error_exits_2_with_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = _run(env, "-c", str(tmp_path / "missing.yaml"), "feeds", "list")
    assert result.exit_code == 2
    assert _error_lines(result) == [f"newsflow: error: {tmp_path / 'missing.yaml'}: config file not found"]
    result = _run({**env, "NEWSFLOW_NO_SUCH_KEY": "1"}, "feeds", "list")
    assert result.exit_code == 2 and "NEWSFLOW_NO_SUCH_KEY: unknown setting" in result.stderr


def test_an_error_in_a_command_exits_1_with_its_message(env: dict[str, str], tmp_path: Path) -> None:
    result = _run(env, "feeds", "list")  # the feed list does not exist
    assert result.exit_code == 1
    assert _error_lines(result) == [f"newsflow: error: {tmp_path / 'feeds.yaml'}: feed list not found"]
    # A settings error raised by a command (not by loading the settings) is not a usage error.
    (tmp_path / "alerts.yaml").write_text("rules: 3\n")
    result = _run(env, "alerts", "remove", "x")
    assert result.exit_code == 1
    assert _error_lines(result) == [f"newsflow: error: {tmp_path / 'alerts.yaml'}: 'rules' must be a list"]
    # The same settings loaded again for the next command in this process (the CLI keeps them module-wide).
    assert _run(env, "-c", str(tmp_path / "missing.yaml"), "feeds", "list").exit_code == 2
    assert _run(env, "feeds", "list").exit_code == 1


def test_stage_commands_show_the_error_kind(env: dict[str, str]) -> None:
    result = _run(env, "clean", "-", stdin="<p>too short</p>")
    assert result.exit_code == 1
    assert _error_lines(result) == ["newsflow: error: discarded: article discarded: no_text"]


def test_clean_discards_below_the_configured_min_words_unless_told(env: dict[str, str]) -> None:
    page = str(Path(__file__).resolve().parent.parent / "fixtures" / "pages" / "seed-rt.html")  # 832 words
    result = _run({**env, "NEWSFLOW_PIPELINE_MIN_WORDS": "1000"}, "clean", page)
    assert result.exit_code == 1
    assert _error_lines(result) == ["newsflow: error: discarded: article discarded: too_short"]
    result = _run({**env, "NEWSFLOW_PIPELINE_MIN_WORDS": "1000"}, "clean", page, "--min-words", "800")
    assert result.exit_code == 0 and '"word_count": 832' in result.stdout


def test_alerts_test_exits_2_for_a_refused_query_and_1_when_elasticsearch_is_down(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_rules(tmp_path / "alerts.yaml", [Rule(name="r", query="energy", channels=Channels(log=True))])

    def refused(*args: object, **kwargs: object) -> None:
        raise SearchRefused("search refused (400): Cannot parse 'a AND ('")

    # Unreachable: exit 1 (the message names the server; the word "refused" in it is the OS's, not the query's).
    result = _run(env, "alerts", "test", "r")
    assert result.exit_code == 1 and "unreachable" in _error_lines(result)[0]
    monkeypatch.setattr(pipeline.search, "search_index", refused)
    result = _run(env, "alerts", "test", "--query", "a AND (")
    assert result.exit_code == 2
    assert _error_lines(result) == ["newsflow: error: search refused (400): Cannot parse 'a AND ('"]
    result = _run(env, "search", "a AND (")  # `newsflow search` has always exited 1 for it
    assert result.exit_code == 1
    assert _error_lines(result) == ["newsflow: error: search refused (400): Cannot parse 'a AND ('"]


def test_usage_errors_found_by_commands_exit_2(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def not_called(*args: object, **kwargs: object) -> None:
        raise SearchError("searched")

    monkeypatch.setattr(pipeline.search, "search_index", not_called)
    result = _run(env, "search", "x", "--sort", "worst")
    assert result.exit_code == 2
    assert _error_lines(result) == ["newsflow: error: --sort must be newest or best (got 'worst')"]
    result = _run(env, "alerts", "test")
    assert result.exit_code == 2 and _error_lines(result) == ["newsflow: error: give a rule NAME or --query"]
