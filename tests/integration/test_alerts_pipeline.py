"""Alerts end to end: `newsflow worker` on the real Kafka and Elasticsearch, a webhook receiver and an SMTP
server on loopback. One test, many asserts, because a worker takes seconds to start:

a matching article alerts once on each channel; its syndicated copy does not; a non-matching article does not;
a failing webhook is retried, then dead-lettered, while the email still arrives; a worker killed with SIGKILL
and restarted (and the seed replayed) sends nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from pipeline.schemas import ALERTS_TOPIC, DLQ_TOPIC, INDEXED_TOPIC, RAW_TOPIC
from pipeline.settings import Settings
from testkit.alerts_corpus import NATO_QUERY, Mailbox, Receiver, wait_until
from testkit.es_index import remove_test_data
from testkit.raw_items import page_item, raw_message
from testkit.topics import TopicReader, create_topics, produce
from testkit.worker import WorkerProcess, alerts_worker_env

pytestmark = pytest.mark.integration


def alerts_list(env: dict[str, str], data_dir: Path) -> dict[str, dict[str, Any]]:
    """`newsflow alerts list --json` in a process of its own, with ``data_dir`` as its data directory."""
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "alerts", "list", "--json"], check=True,
                         capture_output=True, env={**os.environ, **env, "NEWSFLOW_DATA_DIR": str(data_dir)},
                         timeout=120).stdout.decode("utf-8")
    return {doc["name"]: doc for doc in map(json.loads, out.splitlines())}


def test_alerts_once_per_story_on_every_channel(stack: Settings, unique: str, tmp_path: Path, receiver: Receiver,
                                                smtp: tuple[Mailbox, int]) -> None:
    mailbox, smtp_port = smtp
    bootstrap = stack.kafka.bootstrap
    prefix = f"t{unique}."
    rules = tmp_path / "alerts.yaml"
    hook = receiver.url
    rules.write_text(json.dumps({"rules": [
        {"name": "nato", "query": NATO_QUERY, "secret": "s3cret",
         "channels": {"webhook": hook + "/ok/nato", "slack": hook + "/slack", "email": "nato@example.org",
                      "topic": True, "log": True}},
        {"name": "failing", "query": "Rutte", "channels": {"webhook": hook + "/fail", "email": "ops@example.org"}},
        {"name": "nothing", "query": '"quantum chromodynamics"', "channels": {"webhook": hook + "/ok/nothing"}},
    ]}))
    env = alerts_worker_env(stack, unique, tmp_path, rules, NEWSFLOW_ALERTS_SMTP_PORT=str(smtp_port),
                            NEWSFLOW_ALERTS_MAX_ATTEMPTS="3", NEWSFLOW_ALERTS_DELIVERY_TIMEOUT_S="5")
    create_topics(stack, unique)
    worker = WorkerProcess(env, "solo", tmp_path).start()
    alerts = TopicReader(bootstrap, prefix + ALERTS_TOPIC)
    indexed = TopicReader(bootstrap, prefix + INDEXED_TOPIC)
    dlq = TopicReader(bootstrap, prefix + DLQ_TOPIC)
    try:
        seed, syndicated, unrelated = page_item("seed"), page_item("syndicated"), page_item("unrelated")
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(seed)])

        # 1. The seed alerts "nato" once on each channel.
        wait_until(lambda: receiver.to("/ok/nato") and receiver.to("/slack") and mailbox.to("nato@example.org"),
              180, "the seed's alerts", worker.check_alive)
        [(headers, body)] = receiver.to("/ok/nato")
        expected_sig = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Newsflow-Signature"] == expected_sig
        alert = json.loads(body)["alert"]
        assert alert["rule"] == "nato" and alert["query"] == NATO_QUERY
        assert alert["alert_id"] == hashlib.sha256(f"nato\x1f{alert['story_id']}".encode()).hexdigest()[:32]
        assert alert["title"] and alert["url"] == seed.link and alert["source"]
        assert any("<em>" in f for f in alert["fragments"]) and "Mark Rutte" in alert["entities"]
        assert alert["copies"] == 1 and alert["indexed_at"]
        slack = json.loads(receiver.to("/slack")[0][1])
        assert "nato" in slack["text"] and alert["title"] in slack["text"]
        mail = message_from_bytes(mailbox.to("nato@example.org")[0])
        assert mail["X-Newsflow-Alert-Id"] == alert["alert_id"]
        assert {p.get_content_type() for p in mail.walk()} >= {"text/plain", "text/html"}
        events = alerts.wait_for(lambda ms: len(ms) >= 1, 30, "the AlertEvent on news.alerts", worker.check_alive)
        assert events[0]["alert_id"] == alert["alert_id"] and events[0]["article_id"] == alert["article_id"]

        # 2. The failing webhook: 3 attempts, then news.dlq (stage alert); its email arrived anyway.
        wait_until(lambda: mailbox.to("ops@example.org"), 30, "the failing rule's email", worker.check_alive)
        letters = dlq.wait_for(lambda ms: any(m["stage"] == "alert" for m in ms), 60, "the alert dead letter",
                               worker.check_alive)
        [letter] = [m for m in letters if m["stage"] == "alert"]
        assert letter["kind"] == "alert_delivery" and letter["error"].startswith("webhook:")
        assert json.loads(letter["payload"])["alerts"][0]["rule"] == "failing"
        assert len(receiver.to("/fail")) == 3

        # 3. The syndicated copy (same story) and an unrelated article: indexed, but no new alert anywhere.
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(syndicated), raw_message(unrelated)])
        indexed.wait_for(lambda ms: len(ms) >= 3, 120, "the copy and the unrelated article indexed",
                         worker.check_alive)
        time.sleep(4)  # time for any (wrong) alert to arrive

        def counts() -> tuple[int, ...]:
            return (len(receiver.to("/ok/nato")), len(receiver.to("/slack")), len(mailbox.to("nato@example.org")),
                    len(alerts.poll()), len(receiver.to("/fail")), len(mailbox.to("ops@example.org")),
                    len(receiver.to("/ok/nothing")))

        assert counts() == (1, 1, 1, 1, 3, 1, 0)

        assert worker.log_path.read_text().count("alert repeats suppressed") >= 1  # the copy matched, silently
        # `newsflow alerts list` on another host (its own data dir) counts from the broker what the worker sent.
        listed = alerts_list(env, tmp_path / "other-host")
        assert listed["nato"]["matches"] == 1 and listed["failing"]["matches"] == 1
        assert listed["nothing"]["matches"] == 0 and listed["nothing"]["last_fired"] is None
        assert listed["nato"]["last_fired"] and "secret" not in listed["nato"]

        # 4. SIGKILL, restart, replay the seed: the table recovered, nothing is sent twice.
        worker.kill9()
        before = worker.log_path.read_text().count("alert repeats suppressed")
        worker.start()
        produce(bootstrap, prefix + RAW_TOPIC, [raw_message(seed)])
        indexed.wait_for(lambda ms: len(ms) >= 4, 180, "the replayed seed indexed", worker.check_alive)
        wait_until(lambda: worker.log_path.read_text().count("alert repeats suppressed") > before, 60,
              "the restarted worker to match the replayed seed", worker.check_alive)
        time.sleep(2)
        assert counts() == (1, 1, 1, 1, 3, 1, 0)
        assert alerts_list(env, tmp_path / "third-host")["nato"] == listed["nato"]  # the replay counted nothing
    finally:
        worker.stop()
        for reader in (alerts, indexed, dlq):
            reader.close()
        remove_test_data(stack, unique)
