"""Parse cost alone: parse_feed on ordinary feeds, fast path against feedparser, in ms of CPU per item.

    python bench/feed_parse.py [--items 50] [--seconds 2]

Feeds: the generated RSS 2.0 and Atom 1.0 feeds of testkit/feedserver.py (``--items`` each) and the demo feeds
(config/demo). Each is parsed repeatedly for ``--seconds`` of process CPU time with the fast path and then
with feedparser only (``fast_path=False``). The last line printed is one JSON object. No servers needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.fastxml import read_fast  # noqa: E402
from connectors.parser import parse_feed  # noqa: E402
from testkit.feedserver import make_items, render_feed  # noqa: E402

URL = "https://feeds.example.com/feed"
CONTENT_TYPE = "application/xml; charset=utf-8"


def per_item_ms(body: bytes, fast: bool, seconds: float) -> float:
    n_items = len(parse_feed(body, feed_url=URL, content_type=CONTENT_TYPE).items) or 1
    runs, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        parse_feed(body, feed_url=URL, content_type=CONTENT_TYPE, fast_path=fast)
        runs += 1
    return round((time.process_time() - started) / runs / n_items * 1000, 4)


def main() -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # feedparser's updated -> published fallback
    feeds = {
        "generated_rss": render_feed(make_items(args.items), "rss", ttl=30),
        "generated_atom": render_feed(make_items(args.items), "atom"),
        **{name: (ROOT / "config" / "demo" / name).read_bytes() for name in ("wire.xml", "gazette.atom")},
    }
    results = {}
    for name, body in feeds.items():
        results[name] = {
            "fast_path_taken": read_fast(body, URL, CONTENT_TYPE) is not None,
            "fast_ms_per_item": per_item_ms(body, True, args.seconds),
            "feedparser_ms_per_item": per_item_ms(body, False, args.seconds),
        }
        results[name]["speedup"] = round(results[name]["feedparser_ms_per_item"] / results[name]["fast_ms_per_item"], 1)
        print(f"{name}: {results[name]}", file=sys.stderr)
    return {"bench": "feed_parse", "items": args.items, "cores": os.cpu_count(),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3], "feeds": results}


if __name__ == "__main__":
    print(json.dumps(main()))
