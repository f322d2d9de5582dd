"""The ``newsflow`` command line: parses arguments, loads settings, hands off. No logic lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import NewsflowError
from pipeline.logs import configure_logging
from pipeline.settings import Settings, load_settings

app = typer.Typer(help="newsflow: news feeds -> Kafka -> Faust (clean, dedupe, enrich) -> Elasticsearch.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="The local Kafka + Elasticsearch stack (resolved from Maven Central).",
                        no_args_is_help=True)
app.add_typer(stack_app, name="stack")

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

    try:
        result = stack_up(settings())
    except NewsflowError as exc:
        raise fail(str(exc)) from exc
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
def run_cmd() -> None:
    """Bring the local stack up (if needed) and report its health."""
    from pipeline.stack import services, stack_up

    try:
        stack_up(settings())
    except NewsflowError as exc:
        raise fail(str(exc)) from exc
    for s in (svc.status() for svc in services(settings())):
        _echo(f"{s.name}: {s.state} on 127.0.0.1:{s.port} (version {s.version})")


def main() -> None:
    try:
        app()
    except NewsflowError as exc:  # anything a command did not translate itself
        typer.echo(f"newsflow: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
