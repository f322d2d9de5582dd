"""A minimal Faust worker whose one agent runs the sink, for a child process: ``python -c WORKER DATADIR``.

The same wiring pipeline/agents.py uses for the index agent, nothing else: its own app id, topic prefix and index
prefix come from the environment (``NEWSFLOW_*``). Used by tests/integration/test_sink.py and
bench/sink_throughput.py.
"""

from __future__ import annotations

__all__ = ["WORKER"]

WORKER = r'''
import sys
import faust
from pipeline.logs import configure_logging
from pipeline.schemas import DLQ_TOPIC, ENRICHED_TOPIC
from pipeline.settings import load_settings
from pipeline.sink import index_stream

settings = load_settings()
configure_logging("info", "json")
app = faust.App(settings.pipeline.app_id, broker=f"kafka://{settings.kafka.bootstrap}", store="memory://",
                datadir=sys.argv[1], autodiscover=False, web_enabled=False, key_serializer="raw",
                value_serializer="raw", consumer_auto_offset_reset="earliest", topic_disable_leader=True,
                broker_commit_interval=0.5, topic_replication_factor=1)
enriched = app.topic(settings.kafka.topic(ENRICHED_TOPIC), key_type=bytes, value_type=bytes)
dlq = app.topic(settings.kafka.topic(DLQ_TOPIC), key_type=bytes, value_type=bytes)

async def send_dead_letter(letter):
    await (await dlq.send(key=(letter.key or "").encode(), value=letter.model_dump_json().encode()))

@app.agent(enriched)
async def index(stream):
    await index_stream(stream, settings, send_dead_letter)

worker = faust.Worker(app, loglevel="INFO", quiet=True, override_logging=False, redirect_stdouts=False)
worker.execute_from_commandline()
'''
