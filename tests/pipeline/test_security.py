"""Kafka / Elasticsearch security settings: validation, the one client configuration, secrets never shown.

The live Elasticsearch checks (TLS + API key / basic auth against a node with security on) are in
tests/integration/test_secure_es.py.
"""

from __future__ import annotations

import io
import json
import logging
import re
import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

import connectors.publisher as publisher
import pipeline.topics as topics
from pipeline.app import create_app
from pipeline.errors import SettingsError
from pipeline.index import _client_kwargs
from pipeline.logs import configure_logging, get_logger
from pipeline.security import faust_credentials, kafka_failure_hint, kafka_security_config
from pipeline.settings import load_settings
from tests.tlsutil import Pki, make_pki

SASL_SECRET = "sasl-S3cret-value"
KEY_SECRET = "key-S3cret-value"
ES_SECRET = "es-S3cret-value"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), name="client", key_password=KEY_SECRET)


def _secure_env(pki: Pki, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {
        "NEWSFLOW_KAFKA_BOOTSTRAP": "broker1:9093,broker2:9093",
        "NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "NEWSFLOW_KAFKA_SASL_MECHANISM": mechanism,
        "NEWSFLOW_KAFKA_SASL_USERNAME": "newsflow",
        "NEWSFLOW_KAFKA_SASL_PASSWORD": SASL_SECRET,
        "NEWSFLOW_KAFKA_SSL_CAFILE": str(pki.ca_cert),
        "NEWSFLOW_KAFKA_SSL_CERTFILE": str(pki.cert),
        "NEWSFLOW_KAFKA_SSL_KEYFILE": str(pki.key),
        "NEWSFLOW_KAFKA_SSL_PASSWORD": KEY_SECRET,
        "NEWSFLOW_ES_URL": "https://es.example.org:9243",
        "NEWSFLOW_ES_API_KEY": ES_SECRET,
        "NEWSFLOW_ES_CA_CERTS": str(pki.ca_cert),
    }


def test_plaintext_is_the_default() -> None:
    s = load_settings(environ={})
    assert kafka_security_config(s.kafka) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s.kafka) is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_config_from_environment(pki: Pki, mechanism: str) -> None:
    s = load_settings(environ=_secure_env(pki, mechanism))
    config = kafka_security_config(s.kafka)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == mechanism
    assert config["sasl_plain_username"] == "newsflow"
    assert config["sasl_plain_password"] == SASL_SECRET
    ctx = config["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert any(c["subject"] == ((("commonName", "newsflow-test-ca"),),) for c in ctx.get_ca_certs())


def test_faust_gets_the_same_security_as_kafka_python(pki: Pki) -> None:
    s = load_settings(environ=_secure_env(pki))
    creds = faust_credentials(s.kafka)
    assert isinstance(creds, faust.SASLCredentials)
    # What Faust's aiokafka driver hands to aiokafka, key for key, equals the kafka-python configuration.
    aiokafka_auth = credentials_to_aiokafka_auth(creds)
    config = kafka_security_config(s.kafka)
    assert {k: v for k, v in aiokafka_auth.items() if k != "ssl_context"} == \
        {k: v for k, v in config.items() if k != "ssl_context"}
    assert aiokafka_auth["ssl_context"].get_ca_certs() == config["ssl_context"].get_ca_certs()
    assert SASL_SECRET not in repr(creds)


def test_faust_app_is_built_with_the_credentials(pki: Pki, tmp_path: Path) -> None:
    env = _secure_env(pki) | {"NEWSFLOW_DATA_DIR": str(tmp_path)}
    app = create_app(load_settings(environ=env), web_port=0)
    creds = app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"
    assert creds.username == "newsflow" and creds.password == SASL_SECRET


def test_tls_only_with_client_certificate(pki: Pki) -> None:
    s = load_settings(environ={"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
                               "NEWSFLOW_KAFKA_SSL_CAFILE": str(pki.ca_cert),
                               "NEWSFLOW_KAFKA_SSL_CERTFILE": str(pki.cert),
                               "NEWSFLOW_KAFKA_SSL_KEYFILE": str(pki.key),
                               "NEWSFLOW_KAFKA_SSL_PASSWORD": KEY_SECRET})
    config = kafka_security_config(s.kafka)
    assert set(config) == {"security_protocol", "ssl_context"}
    creds = faust_credentials(s.kafka)
    assert isinstance(creds, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"
    assert creds.context.get_ca_certs() == config["ssl_context"].get_ca_certs() != []


def test_wrong_key_password_is_a_clear_error_without_the_password(pki: Pki) -> None:
    s = load_settings(environ={"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
                               "NEWSFLOW_KAFKA_SSL_CERTFILE": str(pki.cert),
                               "NEWSFLOW_KAFKA_SSL_KEYFILE": str(pki.key),
                               "NEWSFLOW_KAFKA_SSL_PASSWORD": "not-the-password"})
    with pytest.raises(SettingsError, match="cannot load the client certificate") as err:
        kafka_security_config(s.kafka)
    assert "not-the-password" not in str(err.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "NEWSFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
          "NEWSFLOW_KAFKA_SASL_USERNAME": "u"}, "security_protocol SASL_SSL needs sasl_password"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
         "needs sasl_mechanism, sasl_username, sasl_password"),
        ({"NEWSFLOW_KAFKA_SASL_USERNAME": "u", "NEWSFLOW_KAFKA_SASL_PASSWORD": SASL_SECRET},
         "sasl_\\* is set but security_protocol PLAINTEXT does not use SASL"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "NEWSFLOW_KAFKA_SASL_MECHANISM": "PLAIN",
          "NEWSFLOW_KAFKA_SASL_USERNAME": "u", "NEWSFLOW_KAFKA_SASL_PASSWORD": SASL_SECRET,
          "NEWSFLOW_KAFKA_SSL_CAFILE": "/etc/hosts"}, "ssl_\\* is set but security_protocol SASL_PLAINTEXT"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "NEWSFLOW_KAFKA_SASL_MECHANISM": "GSSAPI",
          "NEWSFLOW_KAFKA_SASL_USERNAME": "u", "NEWSFLOW_KAFKA_SASL_PASSWORD": SASL_SECRET}, "kafka.sasl_mechanism"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "NEWSFLOW_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
         "ssl_cafile: file not found: /nonexistent/ca.pem"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "NEWSFLOW_KAFKA_SSL_KEYFILE": "/etc/hosts"},
         "ssl_keyfile needs ssl_certfile"),
        ({"NEWSFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka.security_protocol"),
        ({"NEWSFLOW_ES_USERNAME": "elastic", "NEWSFLOW_ES_PASSWORD": SASL_SECRET, "NEWSFLOW_ES_API_KEY": ES_SECRET},
         "set api_key or username \\+ password, not both"),
        ({"NEWSFLOW_ES_USERNAME": "elastic"}, "basic auth needs both username and password"),
        ({"NEWSFLOW_ES_PASSWORD": ES_SECRET}, "basic auth needs both username and password"),
        ({"NEWSFLOW_ES_CA_CERTS": "/etc/hosts"}, "ca_certs is set but url http://127.0.0.1:9200 is not https"),
        ({"NEWSFLOW_ES_URL": "https://es:9200", "NEWSFLOW_ES_CA_CERTS": "/nonexistent/ca.pem"},
         "ca_certs: file not found"),
    ],
)
def test_bad_combinations_fail_at_start_with_one_readable_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        load_settings(environ=env)
    text = str(err.value)
    assert "\n" not in text
    assert SASL_SECRET not in text and ES_SECRET not in text


def test_secrets_never_rendered_or_logged(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings(environ=_secure_env(pki))
    secrets = (SASL_SECRET, KEY_SECRET, ES_SECRET)
    rendered = [repr(s), str(s), s.model_dump_json(), json.dumps(s.model_dump(mode="json")), repr(s.kafka),
                repr(s.es)]
    for text in rendered:
        assert not any(secret in text for secret in secrets), text
    # Logs: the whole settings tree and the ES client arguments logged as structured fields, in JSON and console.
    for fmt in ("json", "console"):
        configure_logging("debug", fmt)
        stream = io.StringIO()
        for handler in logging.getLogger().handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]
        log = get_logger("test.security")
        log.info("settings loaded", settings=s.model_dump(), kafka=s.kafka, es=s.es)
        log.info("es client", kwargs={k: v for k, v in _client_kwargs(s.es).items() if k != "api_key"})
        out = stream.getvalue() + capsys.readouterr().err
        assert "settings loaded" in out and "newsflow" in out
        assert not any(secret in out for secret in secrets), out
    # The secret does reach the client that needs it.
    assert _client_kwargs(s.es)["api_key"] == ES_SECRET
    assert _client_kwargs(s.es)["ca_certs"] == str(pki.ca_cert)


def test_every_kafka_python_client_gets_the_security_config(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connector's producer and admin client and the topic setup's admin client are built with it."""
    s = load_settings(environ=_secure_env(pki))
    seen: dict[str, dict[str, Any]] = {}

    class Stop(Exception):
        pass

    def recorder(name: str) -> Any:
        def build(*_args: Any, **kwargs: Any) -> Any:
            seen[name] = kwargs
            raise Stop  # nothing to talk to here: only the construction arguments matter
        return build

    monkeypatch.setattr(publisher, "KafkaProducer", recorder("producer"))
    monkeypatch.setattr(topics, "KafkaAdminClient", recorder("topics admin"))
    for call in (lambda: topics.ensure_topic(s, "t"), lambda: publisher.Publisher(s, create_topic=False),
                 lambda: topics.ensure_topics(s)):
        with pytest.raises(Stop):
            call()
    assert set(seen) == {"producer", "topics admin"}
    for name, kwargs in seen.items():
        assert kwargs["security_protocol"] == "SASL_SSL", name
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512", name
        assert kwargs["sasl_plain_password"] == SASL_SECRET, name
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext), name


def test_no_kafka_client_is_built_without_the_security_config() -> None:
    """A guard for clients added later: every kafka-python client call in the library passes the one config.

    pipeline/stack/ is exempt: it manages the local PLAINTEXT development broker only.
    """
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"\b(KafkaProducer|KafkaConsumer|KafkaAdminClient)\(")
    calls = 0
    for path in [*root.glob("pipeline/*.py"), *root.glob("connectors/*.py")]:
        text = path.read_text(encoding="utf-8")
        n = len(pattern.findall(text))
        calls += n
        # One use of the config per client construction (in the call, or in the dict the call unpacks).
        assert text.count("**kafka_security_config(settings.kafka)") >= n, path.name
    assert calls >= 4  # publisher (admin, producer), topics (admin), runner (progress consumer)


def test_failure_hint_names_the_security_but_no_secret(pki: Pki) -> None:
    assert kafka_failure_hint(load_settings(environ={}).kafka) == ""
    hint = kafka_failure_hint(load_settings(environ=_secure_env(pki)).kafka)
    assert "SASL_SSL SCRAM-SHA-512 user newsflow" in hint and "refused login" in hint
    assert SASL_SECRET not in hint and KEY_SECRET not in hint
