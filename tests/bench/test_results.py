"""bench/RESULTS.md is the render of bench/results/*.json, and bench/record.py records a benchmark's last line."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

# bench/ is a namespace package on the tests' path (pythonpath = ["."]); bench/record.py imports it the same way.
from bench import record, render_results
from pipeline.settings import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench"


def test_results_md_is_the_render_of_the_recorded_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert render_results.main(["--check"]) == 0, capsys.readouterr().err


def test_a_changed_record_makes_the_check_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    shutil.copytree(BENCH / "results", results)
    record = json.loads((results / "sink_throughput.json").read_text(encoding="utf-8"))
    record["result"]["direct"]["docs_per_s"] = 2500.0
    (results / "sink_throughput.json").write_text(json.dumps(record), encoding="utf-8")
    code = render_results.main(["--check", "--results", str(results), "--output", str(BENCH / "RESULTS.md")])
    assert code == 1 and "not the render" in capsys.readouterr().err


def test_record_keeps_the_last_json_line_with_command_date_and_load(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    results, output = tmp_path / "results", tmp_path / "RESULTS.md"
    bench = 'print("warming up"); print(\'{"direct": {"docs_per_s": 1500.5}, "kafka": {"docs_per_s": 900}}\')'
    code = record.main(["sink_throughput", "--results", str(results), "--output", str(output),
                        "--", sys.executable, "-c", bench])
    assert code == 0, capsys.readouterr().err
    recorded = json.loads((results / "sink_throughput.json").read_text(encoding="utf-8"))
    assert recorded["result"] == {"direct": {"docs_per_s": 1500.5}, "kafka": {"docs_per_s": 900}}
    assert recorded["command"].startswith(sys.executable) and " -c " in recorded["command"]
    assert recorded["date"].endswith("UTC") and recorded["nproc"] >= 1
    assert len(recorded["load"]["before"]) == 3 and len(recorded["load"]["after"]) == 3
    text = output.read_text(encoding="utf-8")
    # 1,500.5 docs/s is below the 2,000 target: listed as missed and marked **no**.
    assert "| direct bulk (ElasticSink) | 1,500.5 docs/s | ≥ 2,000 docs/s | **no** |" in text
    assert "- Sink: ~750-word documents into the local Elasticsearch node: direct bulk" in text


def test_record_refuses_output_without_a_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = record.main(["sink_throughput", "--results", str(tmp_path / "r"), "--output", str(tmp_path / "R.md"),
                        "--", sys.executable, "-c", "print('no json here')"])
    assert code == 1 and "nothing recorded" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_readme_figures_table_is_rendered_between_its_markers() -> None:
    results = render_results.load_results()
    readme = f"# Title\n\nBefore.\n\n{render_results.HEADLINE_START}\nstale\n{render_results.HEADLINE_END}\n\nAfter.\n"
    out = render_results.readme_with_headline(readme, results)
    assert out.startswith("# Title\n\nBefore.\n\n") and out.endswith("\n\nAfter.\n") and "stale" not in out
    # Each headline row shows the same figure as RESULTS.md, from the same record.
    rows = {r[0]: r for r in render_results._rows(render_results.BENCHMARKS["alert_latency"],
                                                   results["alert_latency"]["result"])}
    _label, measured, target, met = rows["news.raw → webhook, 1,000 rules, p99"]
    verdict = "yes" if met else "**no**"
    assert f"| news.raw → alert webhook, 1,000 rules, p99 | {measured} | {target} | {verdict} |" in out
    assert render_results.readme_with_headline(out, results) == out  # idempotent
    with pytest.raises(ValueError, match="no"):
        render_results.readme_with_headline("# no markers\n", results)
