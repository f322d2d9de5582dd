"""``newsflow alerts add/list/remove/test``: the rules file from the command line (mounted by pipeline/cli.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

alerts_app = typer.Typer(help="Keyword alert rules (alerts.rules_file): add, list, remove, test.", no_args_is_help=True)


def _cli() -> Any:
    # Imported when a command runs: pipeline.cli mounts this app, so a top-level import would be circular.
    import pipeline.cli

    return pipeline.cli


@alerts_app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="rule name (letters, digits, space, _ . -)")],
    query: Annotated[str, typer.Option("--query", "-q", help="a `newsflow search` query")],
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST JSON to this URL")] = None,
    slack: Annotated[str | None, typer.Option("--slack", help="Slack incoming-webhook URL")] = None,
    email: Annotated[list[str] | None, typer.Option("--email", help="mail to this address (repeatable)")] = None,
    topic: Annotated[bool, typer.Option("--topic", help="publish AlertEvent JSON on news.alerts")] = False,
    log: Annotated[bool, typer.Option("--log", help="write the alert to the worker's log")] = False,
    digest: Annotated[str | None, typer.Option("--digest", help="send a digest every 30m, 1h, 1d ...")] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="HMAC key: X-Newsflow-Signature on webhooks")]
    = None,
    source: Annotated[str | None, typer.Option("--source", help="only this outlet name or domain")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="only this language code")] = None,
    entity: Annotated[str | None, typer.Option("--entity", help="only articles naming this entity")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="only articles with this feed tag (repeatable)")]
    = None,
    replace: Annotated[bool, typer.Option("--replace", help="overwrite a rule of the same name")] = False,
) -> None:
    """Add a rule; the query is checked by the search parser first (exit 2 with its message if it does not parse).

    Without a channel option the rule alerts on the log.
    """
    from pydantic import ValidationError

    from pipeline import present
    from pipeline.alerts.rules import add_rule, rule_from_options, rules_path, validate_query
    from pipeline.listfile import validation_problems

    cli = _cli()
    s = cli.settings()
    try:
        rule = rule_from_options(name, query, webhook=webhook, slack=slack, email=email, topic=topic, log=log,
                                 digest=digest, secret=secret, source=source, language=lang, entity=entity, tags=tag)
    except ValidationError as exc:
        raise cli.fail(validation_problems(exc, whole="rule"), 2) from exc
    problem = validate_query(s, rule)
    if problem:
        raise cli.fail(f"query does not parse: {problem}", 2)
    path = rules_path(s)
    if not add_rule(path, rule, replace=replace):
        raise cli.fail(f"rule {name!r} exists (use --replace)", 2)
    cli._echo(present.rule_added(rule, path))


@alerts_app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json", help="one JSON object per rule")] = False) -> None:
    """The rules with how often they matched and when they last fired (the same from every host)."""
    from pipeline import present
    from pipeline.alerts.rules import RuleStats, load_rules, rules_path
    from pipeline.alerts.stats import read_stats
    from pipeline.errors import KafkaUnavailable

    cli = _cli()
    s = cli.settings()
    path = rules_path(s)
    rules = load_rules(path)
    stats: dict[str, RuleStats] | None
    try:
        stats = read_stats(s) if rules else {}
    except KafkaUnavailable as exc:  # the rules are still worth showing, without their counts
        cli.warn(f"alert counts unavailable: {exc}")
        stats = None
    cli._echo_lines(present.rule_lines(rules, stats, as_json=as_json, path=path))


@alerts_app.command("remove")
def remove_cmd(name: Annotated[str, typer.Argument(help="rule name")]) -> None:
    """Remove a rule (running workers drop it at their next reload)."""
    from pipeline.alerts.rules import remove_rule, rules_path

    cli = _cli()
    path = rules_path(cli.settings())
    if not remove_rule(path, name):
        raise cli.fail(f"no rule {name!r} in {path}")
    cli._echo(f"removed {name!r}")


@alerts_app.command("test")
def test_cmd(
    name: Annotated[str | None, typer.Argument(help="a rule name (or give --query)")] = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="try a query without adding a rule")] = None,
    since: Annotated[str | None, typer.Option("--since", help="only the last 24h, 7d ...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per hit")] = False,
) -> None:
    """The indexed articles (one per story) the rule matches now: exactly what `newsflow search` finds."""
    from pipeline import present
    from pipeline.alerts.rules import rule_matches
    from pipeline.search import parse_since

    cli = _cli()
    if (name is None) == (query is None):
        raise cli.fail("give a rule NAME or --query", 2)
    result = rule_matches(cli.settings(), name=name, query=query, since=parse_since(since) if since else None,
                          limit=limit)
    if result is None:
        raise cli.fail(f"no rule {name!r}")
    cli._echo_lines(present.rule_test_lines(result, as_json=as_json))
