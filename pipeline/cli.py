"""The ``newsflow`` command line: parses arguments, loads settings, hands off. No logic lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from pipeline.alerts.cli import alerts_app
from pipeline.errors import NewsflowError
from pipeline.logs import configure_logging
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from datetime import datetime

    from typer._click import Context as ClickContext  # typer vendors click; TyperGroup.invoke takes this Context


class _Newsflow(TyperGroup):
    """The root group: a NewsflowError from any command is shown as one line and exits 1 (errors handled once)."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except NewsflowError as exc:
            raise fail(str(exc)) from exc


app = typer.Typer(help="newsflow: news feeds -> Kafka -> Faust (clean, dedupe, enrich) -> Elasticsearch.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=_Newsflow)
stack_app = typer.Typer(help="The local Kafka + Elasticsearch stack (resolved from Maven Central).",
                        no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(alerts_app, name="alerts")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default config/newsflow.yaml)")]


class _State:
    settings: Settings | None = None


_state = _State()


def settings() -> Settings:
    if _state.settings is None:
        _state.settings = load_settings()
    return _state.settings


def _echo(line: str) -> None:
    typer.echo(line)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"newsflow: error: {message}", err=True)
    return typer.Exit(code)


@app.callback()
def _main(config: ConfigOpt = None) -> None:
    try:
        _state.settings = load_settings(config)
    except NewsflowError as exc:
        raise fail(str(exc), 2) from exc
    configure_logging(_state.settings.log_level, _state.settings.log_format)


# -- stack ------------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up_cmd() -> None:
    """Resolve (first time), start Kafka and Elasticsearch in the background, wait until both answer."""
    from pipeline.stack import stack_up

    result = stack_up(settings())
    for name, what in result.items():
        _echo(f"{name}: {what}")


@stack_app.command("down")
def stack_down_cmd() -> None:
    """Stop both servers (SIGTERM, then SIGKILL after stack.stop_timeout_s)."""
    from pipeline.stack import stack_down

    for name, what in stack_down(settings()).items():
        _echo(f"{name}: {what}")


@stack_app.command("status")
def stack_status_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Each server's state, port, version, data size and log file. Exit 1 when one is not running."""
    from pipeline.stack import services

    statuses = [svc.status() for svc in services(settings())]
    if as_json:
        _echo(json.dumps({s.name: s.as_dict() for s in statuses}))
    else:
        for s in statuses:
            _echo(f"{s.name:<14} {s.state:<8} port {s.port:<5} version {s.version or '?':<8} "
                  f"data {s.data_bytes / 1e6:8.1f} MB  pid {s.pid or '-':<7} log {s.log_file}")
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
        _echo(f"==> {svc.log_file} <==")
        _echo(tail(svc.log_file, lines))


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
    import os

    from pipeline.worker import run_worker

    s = settings()
    overrides = {k: v for k, v in (("clean_concurrency", concurrency), ("offload_processes", processes))
                 if v is not None}
    if overrides:
        s = s.model_copy(update={"pipeline": s.pipeline.model_copy(update=overrides)})
    port = s.pipeline.web_port if port is None else port
    run_worker(s, name=name or (f"w{port}" if port else f"w{os.getpid()}"), port=port,
               metrics_port=metrics_port)


# -- search and index (elastic helper) -------------------------------------------------------------
index_app = typer.Typer(help="The Elasticsearch index template, monthly indices and read alias.", no_args_is_help=True)
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
    from pipeline.index import make_client
    from pipeline.search import format_hit, parse_since, search_articles

    if sort not in ("newest", "best"):
        raise fail(f"--sort must be newest or best (got {sort!r})", 2)
    s = settings()
    bold = sys.stdout.isatty() and not as_json
    tags = ("\033[1m", "\033[0m") if bold else (("<em>", "</em>") if as_json else ("**", "**"))
    es = make_client(s.es)
    try:
        result = search_articles(es, s, query, since=parse_since(since) if since else None, source=source,
                                 entity=entity, language=lang, limit=limit, all_copies=all_copies,
                                 sort=sort, tags=tags)
    finally:
        es.close()
    if as_json:
        for hit in result.hits:
            _echo(json.dumps(hit.as_dict(), ensure_ascii=False, default=str))
        return
    for n, hit in enumerate(result.hits, 1):
        _echo(format_hit(n, hit))
    what = "articles" if all_copies else "stories, copies collapsed"
    _echo(f"-- {len(result.hits)} shown ({what}) of {result.total} matching articles, {result.took_ms} ms")


@index_app.command("setup")
def index_setup_cmd() -> None:
    """Create or upgrade the index template and create this month's index behind the alias."""

    from pipeline.index import ensure_index_template, run_with_client

    async def _setup(es: Any) -> dict[str, Any]:
        return (await ensure_index_template(es, settings())).as_dict()

    done = run_with_client(settings().es, _setup)
    _echo(f"template {done['template']} v{done['version']} ({done['action']}), analyzer {done['analyzer']}, "
          f"current index {done['current_index']} behind alias {settings().es.alias}")
    for note in done["notes"]:
        _echo(f"note: {note}")


@index_app.command("status")
def index_status_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Template version and analyzer, the indices behind the alias and their document counts."""

    from pipeline.index import index_status, run_with_client

    st = run_with_client(settings().es, lambda es: index_status(es, settings()))
    if as_json:
        _echo(json.dumps(st))
        return
    _echo(f"cluster {st['cluster']}; template {st['template']} installed v{st['installed_version']} "
          f"(shipped v{st['shipped_version']}), analyzer {st.get('text_analyzer')}")
    for row in st["indices"]:
        _echo(f"  {row['index']:<24} {row['docs']:>9} docs  {row['size'] or '':>8}  {row['health']}")
    _echo(f"alias {st['alias']}: {st['documents']} documents")
    if st["installed_version"] is None:
        raise typer.Exit(1)


# -- connectors: feeds / ingest / connector ---------------------------------------------------------
feeds_app = typer.Typer(help="The feed list (config/feeds.yaml) and each feed's health.", no_args_is_help=True)
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
    added = add_feed(path, spec)
    _echo(f"{'added' if added else 'already listed'}: {spec.url} ({path})")


@feeds_app.command("import")
def feeds_import_cmd(
    opml: Annotated[Path, typer.Argument(help="an OPML subscription list", exists=True, dir_okay=False)],
    feeds: FeedsOpt = None,
) -> None:
    """Add every feed of an OPML file to the feed list (folders become tags)."""
    from connectors.feedlist import import_opml

    path = _feeds_path(feeds)
    added, present = import_opml(path, opml)
    _echo(f"imported {added} feeds, {present} already listed ({path})")


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

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "never"

    for spec in specs:
        st = store.load(spec.url)
        if as_json:
            _echo(json.dumps({"url": spec.url, "name": spec.name or st.title, "status": st.last_status,
                              "last_success_at": st.last_success_at and st.last_success_at.isoformat(),
                              "last_error_at": st.last_error_at and st.last_error_at.isoformat(),
                              "last_error_kind": st.last_error_kind, "last_error": st.last_error,
                              "error_count": st.error_count, "items_published": st.items_published,
                              "moved_to": st.moved_to,
                              "next_check_at": st.next_check_at and st.next_check_at.isoformat()}))
            continue
        health = {"ok": "ok", "not_modified": "ok", "error": f"FAILING x{st.error_count}"}.get(
            st.last_status or "", "not polled yet")
        _echo(f"{spec.name or st.title or spec.url}\n  url {spec.url}\n  {health}; items published "
              f"{st.items_published}; last success {when(st.last_success_at)}; next check {when(st.next_check_at)}")
        if st.last_error:
            _echo(f"  last error {when(st.last_error_at)} [{st.last_error_kind}] {st.last_error[:200]}")
        if st.moved_to:
            _echo(f"  moved permanently to {st.moved_to}")


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
    for url, error in summary.failures.items():
        _echo(f"failed: {url}: {error[:300]}")
    _echo(summary.line())


@app.command("connector")
def connector_cmd(
    feeds: FeedsOpt = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535,
                                             help="/health, /ready, /metrics port (default: none)")] = None,
) -> None:
    """Poll feeds continuously until SIGTERM/SIGINT, then flush the producer and save feed state."""
    from connectors.process import run_connector_process

    summary = run_connector_process(settings(), feeds, port=port)
    _echo(summary.line())


# -- clean stage (clean helper) --------------------------------------------------------------------
@app.command("clean")
def clean_cmd(
    page: Annotated[Path, typer.Argument(help="an HTML page or feed fragment, '-' for stdin", allow_dash=True)],
    url: Annotated[str | None, typer.Option(help="the page's URL (domain, canonical URL)")] = None,
    min_words: Annotated[int, typer.Option(help="discard articles shorter than this")] = 20,
) -> None:
    """Run the clean stage on one page and print the CleanArticle as JSON (to check extraction by hand)."""
    from pipeline.clean import clean_article
    from pipeline.schemas import RawItem

    text = sys.stdin.read() if str(page) == "-" else page.read_text(encoding="utf-8", errors="replace")
    item = RawItem(feed_url="file://" + str(page), link=url, content=text)
    try:
        article = clean_article(item, min_words=min_words)
    except NewsflowError as exc:
        raise fail(f"{exc.kind}: {exc}") from exc
    _echo(json.dumps(article.model_dump(mode="json"), ensure_ascii=False, indent=2))


# -- enrich stage (enrich helper) ------------------------------------------------------------------
@app.command("enrich")
def enrich_cmd(
    text: Annotated[Path, typer.Argument(help="a plain-text article (first line: title), '-' for stdin",
                                         allow_dash=True)],
) -> None:
    """Run the enrich stage on one text and print entities, entity_names, keywords and summary as JSON."""
    from datetime import UTC, datetime

    from pipeline.canonical import text_fingerprint
    from pipeline.enrich import enrich_articles
    from pipeline.schemas import DedupedArticle

    raw = sys.stdin.read() if str(text) == "-" else text.read_text(encoding="utf-8", errors="replace")
    title, _, body = raw.strip().partition("\n")
    body = body.strip() or title
    article = DedupedArticle(feed_url="file://" + str(text), title=title, body=body, ingested_at=datetime.now(UTC),
                             text_fingerprint=text_fingerprint(body), id="-", story_id="-")
    p = settings().pipeline
    try:
        [out] = enrich_articles([article], model=p.spacy_model, ner_max_words=p.ner_max_words,
                                variants_file=str(settings().path(p.entity_variants_file)))
    except NewsflowError as exc:
        raise fail(f"{exc.kind}: {exc}") from exc
    _echo(json.dumps(out.model_dump(mode="json", include={"entities", "entity_names", "keywords", "summary"}),
                     ensure_ascii=False, indent=2))


# -- operations: status, dead letters, reindex (docs/operations-commands.md) ------------------------------
@app.command("status")
def status_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Stack, run processes, consumer lag, articles per minute, feeds, documents, dead letters, alerts.

    Exit 1 when a part is down."""
    from pipeline.status import collect_status, render_status

    st = collect_status(settings())
    for line in render_status(st, as_json=as_json):
        _echo(line)
    if not st.ok:
        raise typer.Exit(1)


dlq_app = typer.Typer(help="Dead letters on news.dlq: list, show, replay.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
StageOpt = Annotated[str | None, typer.Option("--stage", help="clean, dedupe, enrich, sink ...")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="error kind, e.g. invalid_message")]


@dlq_app.command("list")
def dlq_list_cmd(stage: StageOpt = None, kind: KindOpt = None,
                 since: Annotated[str | None, typer.Option("--since", help="only the last 1h, 7d ...")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="one JSON object per letter")] = False) -> None:
    """The dead letters, oldest first, with their offset on news.dlq (for `dlq show`)."""
    from datetime import UTC, datetime

    from pipeline.dlq_tools import list_letters, render_list
    from pipeline.search import parse_since

    after = datetime.now(UTC) - parse_since(since) if since else None
    entries = list_letters(settings(), stage=stage, kind=kind, since=after)
    for line in render_list(entries, as_json=as_json):
        _echo(line)


@dlq_app.command("show")
def dlq_show_cmd(offset: Annotated[int, typer.Argument(help="the letter's offset on news.dlq", min=0)],
                 as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """One dead letter with its error and original payload."""
    from pipeline.dlq_tools import render_entry, show_letter

    entry = show_letter(settings(), offset)
    for line in render_entry(entry, as_json=as_json):
        _echo(line)


@dlq_app.command("replay")
def dlq_replay_cmd(stage: StageOpt = None, kind: KindOpt = None,
                   offset: Annotated[list[int] | None, typer.Option("--offset", help="only this letter (repeatable)")]
                   = None) -> None:
    """Put the original payloads back on their source topics; each letter is replayed once."""
    from pipeline.dlq_tools import render_replay, replay_letters

    result = replay_letters(settings(), stage=stage, kind=kind, offsets=offset or None)
    for line in render_replay(result):
        _echo(line)


@app.command("reindex")
def reindex_cmd(
    allow_fewer: Annotated[bool, typer.Option("--allow-fewer", help="switch even when news.enriched holds fewer "
                                              "articles than the index (its retention dropped some)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Rebuild the indices from news.enriched into new indices, then move the alias in one atomic step."""
    from pipeline.index import run_with_client
    from pipeline.reindex import reindex, render_reindex

    result = run_with_client(settings().es, lambda es: reindex(es, settings(), allow_fewer=allow_fewer))
    for line in ([json.dumps(result.as_dict())] if as_json else render_reindex(result)):
        _echo(line)


def main() -> None:
    try:
        app()
    except NewsflowError as exc:  # raised outside a command (the root group handles those of commands)
        typer.echo(f"newsflow: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
