"""The ``newsflow`` command line: parses arguments, loads settings, hands off. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from pipeline import present
from pipeline.alerts.cli import alerts_app
from pipeline.errors import NewsflowError, SearchRefused
from pipeline.logs import configure_logging
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # typer vendors click; TyperGroup.invoke takes this Context


class _State:
    settings: Settings | None = None


_state = _State()


def settings() -> Settings:
    if _state.settings is None:
        _state.settings = load_settings()
    return _state.settings


def _echo(line: str) -> None:
    typer.echo(line)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def _read(path: Path) -> str:
    """A text file, or stdin for ``-``; undecodable bytes replaced (a page is checked, not refused)."""
    return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8", errors="replace")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"newsflow: error: {message}", err=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"newsflow: warning: {message}", err=True)


# -- errors: handled once ----------------------------------------------------------------------------
# Where a NewsflowError reads or exits otherwise than "newsflow: error: <message>", exit 1 (see _error_exit).
# `clean` and `enrich` run one stage on one input by hand: the error's kind (discarded, enrich_failed) is the answer.
_KIND_SHOWN = frozenset({"clean", "enrich"})
# Exit 2, the user's input to fix: a rule query Elasticsearch refuses, as `alerts add` refuses one it cannot parse.
_USAGE_ERRORS: dict[str, tuple[type[NewsflowError], ...]] = {"alerts test": (SearchRefused,)}


def _error_exit(exc: NewsflowError, command: str) -> typer.Exit:
    """The one place a NewsflowError becomes what the user sees: one line on stderr and the exit code.

    Exit 2 when the settings did not load (a bad config file or NEWSFLOW_* variable: docs/security.md) or for a
    command's usage errors above; 1 for everything else.
    """
    usage = _state.settings is None or isinstance(exc, _USAGE_ERRORS.get(command, ()))
    return fail(f"{exc.kind}: {exc}" if command in _KIND_SHOWN else str(exc), 2 if usage else 1)


def _command(ctx: ClickContext) -> str:
    """The command being run below this group, without the program name: ``clean``, ``alerts test``."""
    names = [ctx.invoked_subcommand or ""]
    while ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(names)


class _Newsflow(TyperGroup):
    """Every group of the CLI: a NewsflowError from the settings or a command is handled here, by the innermost
    group, and nowhere else (commands do not catch them)."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except NewsflowError as exc:
            raise _error_exit(exc, _command(ctx)) from exc


app = typer.Typer(help="newsflow: news feeds -> Kafka -> Faust (clean, dedupe, enrich) -> Elasticsearch.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=_Newsflow)
stack_app = typer.Typer(help="The local Kafka + Elasticsearch stack (resolved from Maven Central).",
                        no_args_is_help=True, cls=_Newsflow)
app.add_typer(stack_app, name="stack")
app.add_typer(alerts_app, name="alerts", cls=_Newsflow)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default config/newsflow.yaml)")]


@app.callback()
def _main(config: ConfigOpt = None) -> None:
    _state.settings = None  # until these load: a SettingsError here exits 2 (_error_exit)
    _state.settings = load_settings(config)
    configure_logging(_state.settings.log_level, _state.settings.log_format)


# -- stack ------------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up_cmd() -> None:
    """Resolve (first time), start Kafka and Elasticsearch in the background, wait until both answer."""
    from pipeline.stack import stack_up

    _echo_lines(present.stack_action_lines(stack_up(settings())))


@stack_app.command("down")
def stack_down_cmd() -> None:
    """Stop both servers (SIGTERM, then SIGKILL after stack.stop_timeout_s)."""
    from pipeline.stack import stack_down

    _echo_lines(present.stack_action_lines(stack_down(settings())))


@stack_app.command("status")
def stack_status_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Each server's state, port, version, data size and log file. Exit 1 when one is not running."""
    from pipeline.stack import services

    statuses = [svc.status() for svc in services(settings())]
    _echo_lines(present.stack_status_lines(statuses, as_json=as_json))
    if any(s.state != "running" for s in statuses):
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs_cmd(
    service: Annotated[str, typer.Argument(help="kafka or elasticsearch")] = "all",
    lines: Annotated[int, typer.Option("-n", "--lines")] = 40,
) -> None:
    """The last lines of each server's log."""
    from pipeline.stack import services
    from pipeline.stack.process import tail

    chosen = [s for s in services(settings()) if service in ("all", s.name)]
    if not chosen:
        raise fail(f"unknown service {service!r}: kafka or elasticsearch", 2)
    for svc in chosen:
        _echo_lines(present.log_tail_lines(svc.log_file, tail(svc.log_file, lines)))


# -- the main job ----------------------------------------------------------------------------------
@app.command("run")
def run_cmd(
    feeds: Annotated[Path | None, typer.Option("--feeds", help="feed list (default poll.feeds_file)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=16, help="worker processes")] = 2,
    progress_every: Annotated[float, typer.Option("--progress-every", help="seconds between progress lines")] = 5.0,
) -> None:
    """The whole pipeline: local stack (if needed), topics, index, connector and workers, until Ctrl-C."""
    from pipeline.runner import run_pipeline

    code = run_pipeline(settings(), feeds_file=feeds, workers=workers, echo=_echo,
                        progress_every_s=progress_every)
    raise typer.Exit(code)


# -- pipeline worker (faust helper) -----------------------------------------------------------------
@app.command("worker")
def worker_cmd(
    name: Annotated[str | None, typer.Option("--name", help="worker name: its local state dir (default from port)")]
    = None,
    port: Annotated[int | None, typer.Option("--port", "--web-port", min=0, max=65535,
                                             help="/health, /ready, /metrics port, 0 = off (default "
                                                  "pipeline.web_port); --web-port is the old name")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, max=64,
                                                    help="clean agent instances (default pipeline.clean_concurrency)")]
    = None,
    processes: Annotated[int | None, typer.Option("--processes", min=0, max=64,
                                                  help="offload pool processes (default pipeline.offload_processes)")]
    = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", min=0, max=65535,
                                                     help="Prometheus port, 0 = off (default metrics_port)")] = None,
) -> None:
    """Run one Faust worker (clean, dedupe, enrich, index) until Ctrl-C; several workers share the partitions."""
    from pipeline.worker import run_worker

    run_worker(settings(), name=name, port=port, metrics_port=metrics_port, clean_concurrency=concurrency,
               offload_processes=processes)


# -- search and index (elastic helper) -------------------------------------------------------------
index_app = typer.Typer(help="The Elasticsearch index template, monthly indices and read alias.", no_args_is_help=True,
                        cls=_Newsflow)
app.add_typer(index_app, name="index")


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help='query string: words, "phrases", AND/OR/NOT, field:value; * = all')],
    since: Annotated[str | None, typer.Option("--since", help="only the last 24h, 7d, 30m, 2w ...")] = None,
    source: Annotated[str | None, typer.Option("--source", help="outlet name or domain")] = None,
    entity: Annotated[str | None, typer.Option("--entity", help='an entity name, e.g. "Mark Rutte"')] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="language code, e.g. en")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 10,
    all_copies: Annotated[bool, typer.Option("--all-copies", help="do not collapse copies of one story")] = False,
    sort: Annotated[str, typer.Option("--sort", help="newest or best")] = "newest",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per hit")] = False,
) -> None:
    """Search the indexed articles (read alias es.alias); one hit per story unless --all-copies."""
    from pipeline.search import parse_since, search_index

    if sort not in ("newest", "best"):
        raise fail(f"--sort must be newest or best (got {sort!r})", 2)
    result = search_index(settings(), query, since=parse_since(since) if since else None, source=source,
                          entity=entity, language=lang, limit=limit, all_copies=all_copies, sort=sort,
                          tags=present.highlight_tags(as_json=as_json, terminal=sys.stdout.isatty()))
    _echo_lines(present.search_lines(result, as_json=as_json, all_copies=all_copies))


@index_app.command("setup")
def index_setup_cmd() -> None:
    """Create or upgrade the index template and create this month's index behind the alias."""
    from pipeline.index import ensure_index_template, run_with_client

    s = settings()
    setup = run_with_client(s.es, lambda es: ensure_index_template(es, s))
    _echo_lines(present.index_setup_lines(setup, s.es.alias))


@index_app.command("status")
def index_status_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Template version and analyzer, the indices behind the alias and their document counts."""
    from pipeline.index import index_status, run_with_client

    st = run_with_client(settings().es, lambda es: index_status(es, settings()))
    _echo_lines(present.index_status_lines(st, as_json=as_json))
    if st["installed_version"] is None:
        raise typer.Exit(1)


# -- connectors: feeds / ingest / connector ---------------------------------------------------------
feeds_app = typer.Typer(help="The feed list (config/feeds.yaml) and each feed's health.", no_args_is_help=True,
                        cls=_Newsflow)
app.add_typer(feeds_app, name="feeds")

FeedsOpt = Annotated[Path | None, typer.Option("--feeds", help="feed list YAML (default: poll.feeds_file)")]


def _feeds_path(feeds: Path | None) -> Path:
    return feeds.resolve() if feeds else settings().path(settings().poll.feeds_file)


@feeds_app.command("add")
def feeds_add_cmd(
    url: Annotated[str, typer.Argument(help="http(s):// or file: URL of an RSS, Atom or JSON feed")],
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    interval: Annotated[int | None, typer.Option(help="seconds between polls (adapts from here)")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="tag copied onto every item (repeatable)")] = None,
    fetch_article: Annotated[bool | None, typer.Option("--fetch-article/--no-fetch-article",
                                                       help="fetch pages of summary-only items")] = None,
    language: Annotated[str | None, typer.Option(help="language hint, e.g. en")] = None,
    feeds: FeedsOpt = None,
) -> None:
    """Add a feed to the feed list (a running connector picks it up)."""
    from pydantic import ValidationError

    from connectors.feedlist import FeedSpec, add_feed

    try:
        spec = FeedSpec(url=url, name=name, interval=interval, tags=tag or [], fetch_article=fetch_article,
                        language=language)
    except ValidationError as exc:
        raise fail(f"invalid feed: {exc.errors()[0]['msg']}", 2) from exc
    path = _feeds_path(feeds)
    _echo(present.feed_added(add_feed(path, spec), spec.url, path))


@feeds_app.command("import")
def feeds_import_cmd(
    opml: Annotated[Path, typer.Argument(help="an OPML subscription list", exists=True, dir_okay=False)],
    feeds: FeedsOpt = None,
) -> None:
    """Add every feed of an OPML file to the feed list (folders become tags)."""
    from connectors.feedlist import import_opml

    path = _feeds_path(feeds)
    _echo(present.feeds_imported(*import_opml(path, opml), path))


@feeds_app.command("list")
def feeds_list_cmd(
    feeds: FeedsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per feed")] = False,
) -> None:
    """Each feed with its health: last success, last error, items published, next check."""
    from connectors.feedlist import load_feeds
    from connectors.state import StateStore

    specs = load_feeds(_feeds_path(feeds))
    store = StateStore(settings().data_path / "feeds")
    for spec in specs:
        _echo_lines(present.feed_lines(spec, store.load(spec.url), as_json=as_json))


@app.command("ingest")
def ingest_cmd(
    once: Annotated[bool, typer.Option("--once", help="poll every feed once, then exit with a summary")] = False,
    feeds: FeedsOpt = None,
) -> None:
    """Poll the feed list and publish new items to news.raw (`--once`; without it, like `newsflow connector`)."""
    if not once:
        connector_cmd(feeds, port=None)
        return
    from connectors import poll_once

    summary = poll_once(settings(), feeds)  # raises on set-up errors only: a failing feed is counted
    _echo_lines(present.poll_lines(summary))


@app.command("connector")
def connector_cmd(
    feeds: FeedsOpt = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535,
                                             help="/health, /ready, /metrics port (default: none)")] = None,
) -> None:
    """Poll feeds continuously until SIGTERM/SIGINT, then flush the producer and save feed state."""
    from connectors.process import run_connector_process

    _echo(present.poll_summary(run_connector_process(settings(), feeds, port=port)))


# -- clean stage (clean helper) --------------------------------------------------------------------
@app.command("clean")
def clean_cmd(
    page: Annotated[Path, typer.Argument(help="an HTML page or feed fragment, '-' for stdin", allow_dash=True)],
    url: Annotated[str | None, typer.Option(help="the page's URL (domain, canonical URL)")] = None,
    min_words: Annotated[int | None, typer.Option(help="discard articles shorter than this (default "
                                                       "pipeline.min_words)")] = None,
) -> None:
    """Run the clean stage on one page and print the CleanArticle as JSON (to check extraction by hand)."""
    from pipeline.clean import clean_article
    from pipeline.schemas import RawItem

    item = RawItem(feed_url="file://" + str(page), link=url, content=_read(page))
    min_words = settings().pipeline.min_words if min_words is None else min_words
    _echo(present.article_json(clean_article(item, min_words=min_words)))


# -- enrich stage (enrich helper) ------------------------------------------------------------------
@app.command("enrich")
def enrich_cmd(
    text: Annotated[Path, typer.Argument(help="a plain-text article (first line: title), '-' for stdin",
                                         allow_dash=True)],
) -> None:
    """Run the enrich stage on one text and print entities, entity_names, keywords and summary as JSON."""
    from pipeline.enrich import article_from_text, enrich_articles, enrich_options

    article = article_from_text(_read(text), feed_url="file://" + str(text))
    [out] = enrich_articles([article], **enrich_options(settings()))
    _echo(present.enrichment_json(out))


# -- operations: status, dead letters, reindex (docs/operations-commands.md) ------------------------------
@app.command("status")
def status_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Stack, run processes, consumer lag, articles per minute, feeds, documents, dead letters, alerts.

    Exit 1 when a part is down."""
    from pipeline.status import collect_status

    st = collect_status(settings())
    _echo_lines(present.status_lines(st, as_json=as_json))
    if not st.ok:
        raise typer.Exit(1)


dlq_app = typer.Typer(help="Dead letters on news.dlq: list, show, replay.", no_args_is_help=True,
                      cls=_Newsflow)
app.add_typer(dlq_app, name="dlq")
StageOpt = Annotated[str | None, typer.Option("--stage", help="clean, dedupe, enrich, sink ...")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="error kind, e.g. invalid_message")]


@dlq_app.command("list")
def dlq_list_cmd(stage: StageOpt = None, kind: KindOpt = None,
                 since: Annotated[str | None, typer.Option("--since", help="only the last 1h, 7d ...")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="one JSON object per letter")] = False) -> None:
    """The dead letters, oldest first, with their offset on news.dlq (for `dlq show`)."""
    from datetime import UTC, datetime

    from pipeline.dlq_tools import list_letters
    from pipeline.search import parse_since

    after = datetime.now(UTC) - parse_since(since) if since else None
    _echo_lines(present.dlq_list_lines(list_letters(settings(), stage=stage, kind=kind, since=after),
                                       as_json=as_json))


@dlq_app.command("show")
def dlq_show_cmd(offset: Annotated[int, typer.Argument(help="the letter's offset on news.dlq", min=0)],
                 as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """One dead letter with its error and original payload."""
    from pipeline.dlq_tools import show_letter

    _echo_lines(present.dlq_entry_lines(show_letter(settings(), offset), as_json=as_json))


@dlq_app.command("replay")
def dlq_replay_cmd(stage: StageOpt = None, kind: KindOpt = None,
                   offset: Annotated[list[int] | None, typer.Option("--offset", help="only this letter (repeatable)")]
                   = None) -> None:
    """Put the original payloads back on their source topics; each letter is replayed once."""
    from pipeline.dlq_tools import replay_letters

    _echo_lines(present.dlq_replay_lines(replay_letters(settings(), stage=stage, kind=kind, offsets=offset or None)))


@app.command("reindex")
def reindex_cmd(
    allow_fewer: Annotated[bool, typer.Option("--allow-fewer", help="switch even when news.enriched holds fewer "
                                              "articles than the index (its retention dropped some)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Rebuild the indices from news.enriched into new indices, then move the alias in one atomic step."""
    from pipeline.index import run_with_client
    from pipeline.reindex import reindex

    result = run_with_client(settings().es, lambda es: reindex(es, settings(), allow_fewer=allow_fewer))
    _echo_lines(present.reindex_lines(result, as_json=as_json))


def main() -> None:
    """The ``newsflow`` console script. Errors are handled by the groups (:class:`_Newsflow`), not here: nothing
    outside a group's invoke (argument parsing) raises a NewsflowError."""
    app()


if __name__ == "__main__":
    main()
