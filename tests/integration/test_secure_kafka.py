"""newsflow's Kafka clients against a private broker with SASL (PLAIN, SCRAM-SHA-256/512) and TLS (mutual).

A second Kafka of the local stack's version (the Maven-resolved jars) runs here on free ports with its own
data directory; the shared broker on 9092 is not touched. Listeners: SASL_PLAINTEXT, SASL_SSL, SSL (client
certificate required) and a PLAINTEXT one for the broker itself. SCRAM users are created when the storage is
formatted (``--add-scram``). The broker gets a parent-death signal, so it dies with pytest; the fixture stops it.

Each mode goes through newsflow's own code paths: topic setup (kafka-python admin, pipeline/topics.py), the
connector's publisher (kafka-python producer) and an aiokafka consumer configured exactly as Faust's aiokafka
driver configures it from :func:`pipeline.security.faust_credentials`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from connectors.publisher import Publisher
from pipeline.errors import KafkaUnavailable
from pipeline.schemas import CLEAN_TOPIC, RAW_TOPIC, RawItem
from pipeline.security import faust_credentials
from pipeline.settings import Settings, load_settings
from pipeline.stack import KafkaService
from pipeline.stack.process import port_open, tail
from pipeline.topics import ensure_topics, topic_layout
from tests.childproc import die_with_parent, stop_group
from tests.tlsutil import Pki, make_pki

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-S3cret-pw", "bob": "bob-S3cret-pw"}  # alice: PLAIN; bob: SCRAM
CLIENT_KEY_PASSWORD = "client-key-S3cret"


@dataclass(frozen=True)
class Broker:
    ports: dict[str, int]  # listener name -> port
    pki: Pki  # the broker's certificate and the CA
    client: Pki  # a client certificate from the same CA, encrypted key


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _properties(work: Path, ports: dict[str, int], pki: Pki, keystore: Path) -> str:
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items() if name != "CONTROLLER")
    jaas_plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                  f'user_alice="{USERS["alice"]}";')
    jaas_scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{ports['CONTROLLER']}",
        f"listeners={listeners}",
        f"advertised.listeners={advertised}",
        "inter.broker.listener.name=INTERNAL",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
        "SASL_SSL:SASL_SSL,SSL:SSL",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"log.dirs={work / 'data'}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki.ca_cert}",
        "listener.name.ssl.ssl.client.auth=required",
    ]
    for listener in ("sasl_plaintext", "sasl_ssl"):
        lines.append(f"listener.name.{listener}.plain.sasl.jaas.config={jaas_plain}")
        for mech in ("scram-sha-256", "scram-sha-512"):
            lines.append(f"listener.name.{listener}.{mech}.sasl.jaas.config={jaas_scram}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def broker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    lib = KafkaService(stack).lib_dir
    assert lib.is_dir(), f"{lib}: the local stack's Kafka jars are not resolved"
    work = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(work / "pki", "broker")
    client = make_pki(work / "pki", "client", key_password=CLIENT_KEY_PASSWORD)
    keystore = work / "broker-keystore.pem"  # Kafka's PEM key store: the key, then the certificate
    keystore.write_text(pki.key.read_text() + pki.cert.read_text())
    names = ["INTERNAL", "SASL_PLAINTEXT", "SASL_SSL", "SSL", "CONTROLLER"]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    config = work / "server.properties"
    config.write_text(_properties(work, ports, pki, keystore))
    log4j = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka" / "log4j2.properties"
    java = [str(Path(stack.stack.java_home) / "bin" / "java") if stack.stack.java_home else "java",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{lib}/*"]
    scram = [arg for user in ("bob",) for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512")
             for arg in ("--add-scram", f"{mech}=[name={user},password={USERS[user]}]")]
    subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", "bmV3c2Zsb3ctc2VjdXJl", "-c", str(config),
                    *scram], check=True, capture_output=True, timeout=180)
    out = work / "kafka.out"
    proc = subprocess.Popen([java[0], "-Xms256m", "-Xmx256m", *java[1:], "kafka.Kafka", str(config)],
                            stdout=out.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        _wait_ready(proc, ports, out)
        yield Broker(ports=ports, pki=pki, client=client)
    finally:
        stop_group(proc)


def _wait_ready(proc: subprocess.Popen[bytes], ports: dict[str, int], out: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"private Kafka exited ({proc.returncode}):\n{tail(out, 30)}")
        if all(port_open(p) for p in ports.values()):
            with contextlib.suppress(KafkaError, OSError, ValueError):
                admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{ports['INTERNAL']}", request_timeout_ms=3000)
                try:
                    if admin.describe_cluster().get("brokers"):
                        return
                finally:
                    admin.close()
        time.sleep(1)
    pytest.fail(f"private Kafka not ready after {timeout_s}s:\n{tail(out, 30)}")


def _settings(broker: Broker, mode: str, unique: str, **extra: str) -> Settings:
    protocol, _, mechanism = mode.partition("/")
    env = {"NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.ports[protocol]}",
           "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": protocol,
           "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"sec-{unique}.", "NEWSFLOW_KAFKA_PARTITIONS": "2"}
    if mechanism:
        user = "alice" if mechanism == "PLAIN" else "bob"
        env |= {"NEWSFLOW_KAFKA_SASL_MECHANISM": mechanism, "NEWSFLOW_KAFKA_SASL_USERNAME": user,
                "NEWSFLOW_KAFKA_SASL_PASSWORD": USERS[user]}
    if protocol.endswith("SSL"):
        env["NEWSFLOW_KAFKA_SSL_CAFILE"] = str(broker.pki.ca_cert)
    if protocol == "SSL":
        env |= {"NEWSFLOW_KAFKA_SSL_CERTFILE": str(broker.client.cert),
                "NEWSFLOW_KAFKA_SSL_KEYFILE": str(broker.client.key),
                "NEWSFLOW_KAFKA_SSL_PASSWORD": CLIENT_KEY_PASSWORD}
    return load_settings(environ=env | extra)


async def _consume(settings: Settings, topic: str, expected: int, timeout_s: float = 60) -> list[bytes]:
    # Exactly the keyword arguments Faust's aiokafka driver derives from broker_credentials.
    auth = credentials_to_aiokafka_auth(faust_credentials(settings.kafka))
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap, auto_offset_reset="earliest",
                                group_id=f"{topic}-reader", **auth)
    await consumer.start()
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            got += [m.value for records in batch.values() for m in records if m.value is not None]
        return got
    finally:
        await consumer.stop()


@pytest.mark.parametrize("mode", ["SASL_PLAINTEXT/PLAIN", "SASL_PLAINTEXT/SCRAM-SHA-256", "SASL_SSL/SCRAM-SHA-512",
                                  "SSL"])
async def test_topics_publisher_and_faust_consumer_over_security(broker: Broker, unique: str, mode: str) -> None:
    settings = _settings(broker, mode, unique)
    raw = settings.kafka.topic(RAW_TOPIC)
    found = ensure_topics(settings)  # kafka-python admin
    for _ in range(20):
        # ensure_topics leaves out topics whose leader is not elected yet (right after creation): ask again.
        if len(found) == len(topic_layout(settings)):
            break
        await asyncio.sleep(0.5)
        found = ensure_topics(settings)
    assert found[raw] == 2 and len(found) == len(topic_layout(settings))
    publisher = Publisher(settings)  # kafka-python admin + idempotent producer
    try:
        items = [RawItem(feed_url="https://feed.example/rss", link=f"https://feed.example/{unique}/{i}",
                         title=f"item {i}") for i in range(5)]
        outcome = await publisher.publish(items)
    finally:
        await asyncio.to_thread(publisher.close, 10.0)
    assert len(outcome.acked) == 5 and not outcome.failed
    values = await _consume(settings, raw, 5)  # aiokafka, configured as Faust configures it
    assert sorted(RawItem.model_validate_json(v).link or "" for v in values) == sorted(i.link or "" for i in items)


@pytest.mark.parametrize("mode", ["SASL_PLAINTEXT/SCRAM-SHA-512", "SASL_SSL/PLAIN"])
def test_wrong_password_is_refused_without_showing_it(broker: Broker, unique: str, mode: str) -> None:
    wrong = "not-the-password-42"
    settings = _settings(broker, mode, unique, NEWSFLOW_KAFKA_SASL_PASSWORD=wrong)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable) as err:
        ensure_topics(settings)
    assert time.monotonic() - started < 120
    print(f"error shown: {err.value}")  # for the record in -s / -rP output
    assert wrong not in str(err.value)
    assert f"127.0.0.1:{broker.ports[mode.split('/')[0]]}" in str(err.value)
    protocol, _, mechanism = mode.partition("/")
    assert f"[{protocol} {mechanism} user " in str(err.value) and "refused login" in str(err.value)


def test_ssl_without_client_certificate_is_refused(broker: Broker, unique: str) -> None:
    settings = load_settings(environ={"NEWSFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.ports['SSL']}",
                                      "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
                                      "NEWSFLOW_KAFKA_SSL_CAFILE": str(broker.pki.ca_cert),
                                      "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"sec-{unique}."})
    with pytest.raises(KafkaUnavailable, match=r"\[SSL: a refused login or TLS handshake"):
        ensure_topics(settings)


FORWARD_APP = '''
from pipeline.app import create_app
from pipeline.settings import load_settings

# newsflow's own app factory: broker_credentials come from the settings (NEWSFLOW_KAFKA_* of the environment).
app = create_app(load_settings(), worker_name="secure-forward", web_port=0)


@app.agent(app.raw_topic)
async def forward(stream):
    async for value in stream:
        await app.clean_topic.send(value=value)
'''


async def test_faust_worker_over_sasl_ssl(broker: Broker, unique: str, tmp_path: Path) -> None:
    """A real Faust worker made by pipeline.app.create_app consumes and produces over SASL_SSL + SCRAM-SHA-512."""
    settings = _settings(broker, "SASL_SSL/SCRAM-SHA-512", unique)
    found = ensure_topics(settings)
    for _ in range(20):
        if len(found) == len(topic_layout(settings)):
            break
        await asyncio.sleep(0.5)
        found = ensure_topics(settings)
    (tmp_path / "secure_forward.py").write_text(FORWARD_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env |= {"NEWSFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap, "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "NEWSFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "NEWSFLOW_KAFKA_SASL_USERNAME": "bob",
            "NEWSFLOW_KAFKA_SASL_PASSWORD": USERS["bob"], "NEWSFLOW_KAFKA_SSL_CAFILE": str(broker.pki.ca_cert),
            "NEWSFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix, "NEWSFLOW_KAFKA_PARTITIONS": "2",
            "NEWSFLOW_PIPELINE_APP_ID": f"secure-{unique}", "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parents[2]}"}
    log_path = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "faust", "-A", "secure_forward", "worker", "-l", "info",
                               "--without-web"], cwd=tmp_path, env=env, stdout=log_path.open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
    try:
        publisher = Publisher(settings, create_topic=False)
        try:
            item = RawItem(feed_url="https://feed.example/rss", link=f"https://feed.example/{unique}/faust")
            outcome = await publisher.publish([item])
        finally:
            await asyncio.to_thread(publisher.close, 10.0)
        assert outcome.acked == [item]
        values = await _consume(settings, settings.kafka.topic(CLEAN_TOPIC), 1, timeout_s=180)
        assert worker.poll() is None, tail(log_path, 40)
        assert [RawItem.model_validate_json(v).link for v in values] == [item.link], tail(log_path, 40)
    finally:
        stop_group(worker, timeout_s=30)
    assert USERS["bob"] not in log_path.read_text(errors="replace")
