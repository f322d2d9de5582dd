"""Elasticsearch stops for 60 s while messages flow; once it is back, every document is indexed.

Also covers a sink that starts before Elasticsearch does (it waits for the index template).

Runs its own Elasticsearch node (port 9210) so the shared node is never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.stack.elasticsearch import ElasticsearchService
from testkit.private_stack import private_settings
from testkit.sink_worker import SinkRig, make_article, make_rig

pytestmark = [pytest.mark.integration, pytest.mark.fault]

ES_PORT = 9210
DOWN_S = 60.0


@pytest.fixture()
def own_es(stack: Settings) -> Iterator[ElasticsearchService]:
    with private_settings(stack, "es", NEWSFLOW_STACK_ES_PORT=str(ES_PORT), NEWSFLOW_STACK_ES_TRANSPORT_PORT="9310",
                          NEWSFLOW_STACK_ES_HEAP="512m", NEWSFLOW_ES_URL=f"http://127.0.0.1:{ES_PORT}") as settings:
        service = ElasticsearchService(settings)  # not started yet: the test starts it while the sink waits
        try:
            yield service
        finally:
            service.down()


@pytest.fixture()
def rig(stack: Settings, own_es: ElasticsearchService, unique: str, tmp_path: Path) -> Iterator[SinkRig]:
    r = make_rig(stack, unique, tmp_path, NEWSFLOW_ES_URL=f"http://127.0.0.1:{ES_PORT}")
    r.create_topics()
    yield r
    r.stop_worker()  # the node and its indices go with own_es


def test_sink_waits_for_elasticsearch_and_loses_nothing(rig: SinkRig, own_es: ElasticsearchService) -> None:
    # 1. The sink starts while Elasticsearch is not running yet: it waits, then indexes.
    first = [make_article(n) for n in range(30)]
    rig.produce([(a.id, a.model_dump_json().encode()) for a in first])
    rig.start_worker()
    own_es.up()
    rig.wait_for("the first 30 documents", lambda: rig.count() == 30 and rig.committed_all())

    # 2. Elasticsearch stops for 60 s while 100 more messages arrive.
    own_es.down()
    second = [make_article(n) for n in range(30, 130)]
    rig.produce([(a.id, a.model_dump_json().encode()) for a in second[:50]])
    time.sleep(DOWN_S / 2)
    rig.produce([(a.id, a.model_dump_json().encode()) for a in second[50:]])
    time.sleep(DOWN_S / 2)
    assert rig.worker is not None and rig.worker.poll() is None, rig.worker_log()
    # Nothing was acknowledged while Elasticsearch was away: the offsets still point at the first batch.
    assert not rig.committed_all()
    assert "elasticsearch unavailable, waiting" in rig.worker_log()

    # 3. Back: every message of the outage is indexed and committed.
    own_es.up()
    rig.wait_for("all 130 documents after the restart", lambda: rig.count() == 130 and rig.committed_all(),
                 timeout_s=90)
