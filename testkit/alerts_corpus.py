"""Helpers of the alert tests and benchmark: a generated corpus and rules (deterministic from a seed), a loopback
webhook receiver, an SMTP mailbox, polling."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.schemas import EnrichedArticle, Entity

_TEXT = ("energy truce ceasefire talks pipeline gas prices sanctions summit parliament minister election "
         "vote budget deficit inflation bank rates drought harvest wheat exports ports shipping strike union "
         "wages hospital nurses vaccine outbreak flood rescue bridge railway airport storm wildfire climate "
         "emissions solar wind turbines battery mining copper lithium court ruling appeal verdict protest police "
         "border refugees asylum treaty alliance defence missiles drones navy frigate satellite launch rocket "
         "research university students teachers schools running runs ran negotiations negotiators negotiate")
WORDS = _TEXT.split()
PEOPLE = ("Mark Rutte", "Ursula von der Leyen", "Olena Petrenko", "James Whitfield", "Amara Okafor", "Kenji Sato")
SOURCES = ("Reuters", "Meridian Wire", "Harbour Gazette", "Northfield Ledger", "Copperline")
TAGS = ("world", "business", "science", "local")
# The seed fixture page's rule (testkit.raw_items): the unrelated page mentions NATO, Ukraine and Kiev too, but not
# Mark Rutte.
NATO_QUERY = 'NATO AND (Ukraine OR Kiev) AND entity_names:"Mark Rutte"'


def corpus(n: int = 60, seed: int = 7, prefix: str = "a") -> list[EnrichedArticle]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(25, 70))]
        people = rng.sample(PEOPLE, rng.randint(0, 2))
        body = " ".join(words[:10]) + ". " + (f"{people[0]} said " if people else "") + " ".join(words[10:]) + "."
        title = " ".join(w.capitalize() if k == 0 else w for k, w in enumerate(rng.sample(WORDS, 5)))
        story = f"{prefix}s{i // 3 if i % 4 == 0 else i}"  # some stories have several copies
        source = rng.choice(SOURCES)
        out.append(EnrichedArticle(
            id=f"{prefix}{i}", story_id=story, feed_url="http://feeds.example/rss", url=f"https://example.com/{prefix}{i}",
            title=title, body=body, summary=" ".join(words[:12]), source=source,
            source_domain=source.split()[0].lower() + ".example", language="en" if i % 7 else "fr",
            ingested_at=now - timedelta(minutes=i), published_at=now - timedelta(minutes=i),
            text_fingerprint=f"fp{prefix}{i}", word_count=len(words), tags=[TAGS[i % len(TAGS)]],
            entities=[Entity(name=p, label="PERSON", count=1) for p in people], entity_names=people,
        ))
    return out


def sample_article(**kw: object) -> EnrichedArticle:
    """One article for the alert unit tests: a title with markup to escape, two entities; ``kw`` overrides fields."""
    base: dict[str, object] = dict(
        id="a1", story_id="s1", feed_url="http://f", url="https://example.com/1", title="Energy <truce> holds",
        body="The energy truce holds.", source="Reuters", ingested_at=datetime.now(UTC), text_fingerprint="fp",
        entities=[Entity(name="Kyiv", label="GPE", count=1), Entity(name="Mark Rutte", label="PERSON", count=3)],
        entity_names=["Kyiv", "Mark Rutte"])
    return EnrichedArticle.model_validate(base | kw)


def generated_queries(n: int, seed: int = 11, words: list[str] | None = None) -> list[tuple[str, dict[str, object]]]:
    """(query, filters) pairs covering words, phrases, boolean, field:value, wildcards, NOT and filters."""
    rng = random.Random(seed)
    vocabulary = words or WORDS

    def w() -> str:
        return rng.choice(vocabulary)

    shapes = [
        lambda: w(),
        lambda: f"{w()} {w()}",
        lambda: f'"{w()} {w()}"',
        lambda: f"{w()} AND {w()}",
        lambda: f"{w()} OR {w()}",
        lambda: f"{w()} AND ({w()} OR {w()})",
        lambda: f"{w()} AND NOT {w()}",
        lambda: f"{w()} -{w()}",
        lambda: f"NOT {w()}",
        lambda: f"{w()} OR {w()} {w()}",
        lambda: f"{w()} AND {w()} OR {w()}",
        lambda: f"title:{w()}",
        lambda: f"title:{w()} OR body:{w()}",
        lambda: f"source:\"{rng.choice(SOURCES)}\" AND {w()}",
        lambda: f"language:fr OR {w()}",
        lambda: f"entity_names:\"{rng.choice(PEOPLE)}\"",
        lambda: f"entity_names:\"{rng.choice(PEOPLE)}\" AND {w()}",
        lambda: f"{w()[:4]}*",
        lambda: f"{w()[:3]}* AND {w()}",
        lambda: f"\"{rng.choice(PEOPLE)}\" {w()}",
        lambda: f"({w()} OR {w()}) AND NOT ({w()} OR {w()})",
        lambda: f"+{w()} {w()}",
        lambda: f"{w()}^2 {w()}",
        lambda: f"\"{w()} {w()}\"~3",
        lambda: "negotiate",
        lambda: "running",
    ]
    out: list[tuple[str, dict[str, object]]] = []
    for i in range(n):
        query = rng.choice(shapes)()
        filters: dict[str, object] = {}
        if i % 9 == 0:
            filters["source"] = rng.choice(SOURCES)
        if i % 11 == 0:
            filters["language"] = "en"
        if i % 13 == 0:
            filters["tags"] = [rng.choice(TAGS)]
        if i % 17 == 0:
            filters["entity"] = rng.choice(PEOPLE)
        out.append((query, filters))
    return out


def zipf_vocabulary(size: int = 20_000, seed: int = 3) -> list[str]:
    """Distinct pseudo-words, most frequent first (news-like: a large vocabulary with a long tail)."""
    rng = random.Random(seed)
    words: list[str] = list(WORDS)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_text(rng: random.Random, vocabulary: list[str], weights: list[float], words: int) -> str:
    return " ".join(rng.choices(vocabulary, weights=weights, k=words))


def zipf_weights(vocabulary: list[str]) -> list[float]:
    return [1.0 / (rank + 1) ** 1.05 for rank in range(len(vocabulary))]


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, alive: Callable[[], None]) -> None:
    """Poll ``condition`` until true; ``alive`` raises when the process under test died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        alive()
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class Receiver:
    """A loopback HTTP server: /ok/* and /slack answer 200, /fail answers 500, /flaky* 500 the first time and 200
    after; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes, float]] = []  # path, headers, body, arrival time
        seen: set[str] = set()  # paths requested before (not a scan of ``requests``: thousands in the benchmark)
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers (1.0 closes under httpx's pooled reuse)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    first = self.path not in seen
                    seen.add(self.path)
                    receiver.requests.append((self.path, dict(self.headers), body, time.time()))
                failing = self.path.startswith("/fail") or (self.path.startswith("/flaky") and first)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 256  # bursts of concurrent deliveries
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def to(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b, _t in list(self.requests) if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives, with its recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[bytes]:
        return [content for rcpt, content in list(self.messages) if address in rcpt]
