"""Run one benchmark, keep the JSON object it prints on its last line, and re-render bench/RESULTS.md.

    python bench/record.py [--note TEXT] NAME -- python bench/SCRIPT.py [ARGS...]

The record goes to ``bench/results/NAME.json`` (replacing the previous run of NAME) with the command, the date
(UTC), the machine load (``os.getloadavg()`` before and after) and the number of usable cores. NAME must be a
key of ``BENCHMARKS`` in ``bench/render_results.py``, which says which figures are shown and their targets.
A benchmark that exits non-zero (a quality gate below its floor) is recorded all the same, with its exit code:
a missed target is reported, never hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.render_results import (  # noqa: E402
    BENCHMARKS,
    README_MD,
    RESULTS_DIR,
    RESULTS_MD,
    load_results,
    readme_with_headline,
    render,
)


def last_json_line(stdout: str) -> dict[str, object]:
    """The JSON object on the last non-empty line of ``stdout`` (every benchmark prints one)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the benchmark printed nothing on stdout")
    value = json.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError(f"the last line is JSON but not an object: {lines[-1][:200]}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(BENCHMARKS), metavar="NAME", help="the result's name")
    parser.add_argument("--note", default="", help="one line shown under the result (e.g. what else ran)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help=argparse.SUPPRESS)  # tests only
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help=argparse.SUPPRESS)  # tests only
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        parser.error("give the benchmark command after --")
    split = argv.index("--")
    args, command = parser.parse_args(argv[:split]), argv[split + 1:]
    if not command:
        parser.error("give the benchmark command after --")

    load_before = os.getloadavg()
    started = datetime.now(UTC)
    # stderr goes straight to the terminal (progress lines); stdout is kept for its last line.
    try:
        proc = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        print(f"record: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 1
    load_after = os.getloadavg()
    sys.stdout.write(proc.stdout)
    try:
        result = last_json_line(proc.stdout)
    except ValueError as exc:
        print(f"record: nothing recorded: {exc} (exit code {proc.returncode})", file=sys.stderr)
        return 1

    record = {
        "name": args.name,
        "command": shlex.join(command),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "load": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "nproc": len(os.sched_getaffinity(0)),
        "exit_code": proc.returncode,
        "note": args.note,
        "result": result,
    }
    args.results.mkdir(exist_ok=True)
    path = args.results / f"{args.name}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    results = load_results(args.results)
    args.output.write_text(render(results), encoding="utf-8")
    if args.output == RESULTS_MD:  # the real results (not a test's): the README's figures table follows
        README_MD.write_text(readme_with_headline(README_MD.read_text(encoding="utf-8"), results), encoding="utf-8")
    print(f"record: {path} written, {args.output} rendered", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
