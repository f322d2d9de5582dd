"""Kafka security for real clusters: the ONE place that turns ``kafka.*`` settings into client configuration.

Every Kafka client of newsflow takes its security from :func:`kafka_security_config`:

- kafka-python ``KafkaProducer`` / ``KafkaConsumer`` / ``KafkaAdminClient``: ``**kafka_security_config(...)``
  (connectors/publisher.py, pipeline/topics.py, pipeline/runner.py);
- Faust / aiokafka: ``broker_credentials=faust_credentials(...)`` (pipeline/app.py), built from the same dict.

kafka-python and aiokafka use the same keyword names (``security_protocol``, ``ssl_context``,
``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``), so one dict serves both, and TLS is
one :class:`ssl.SSLContext` built here (CA file, optional client certificate + key + key password).

Combinations are validated when the settings load (:class:`~pipeline.settings.KafkaSettings`); secrets
stay :class:`~pydantic.SecretStr` until this module hands them to a client, and are never logged.
Elasticsearch credentials (CA file, API key or basic auth) are applied in :mod:`pipeline.index`.
"""

from __future__ import annotations

import ssl
from typing import Any

from pipeline.errors import SettingsError
from pipeline.settings import KafkaSettings

__all__ = ["faust_credentials", "kafka_failure_hint", "kafka_security_config", "kafka_ssl_context"]


def kafka_ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (None for PLAINTEXT / SASL_PLAINTEXT).

    Raises:
        SettingsError: a CA, certificate or key file cannot be loaded (wrong path, wrong key password).
    """
    if not kafka.security_protocol.endswith("SSL"):
        return None
    try:
        # cafile None: the system's trust store (a broker with a public certificate).
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=kafka.ssl_cafile)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"kafka.ssl_cafile: cannot load {kafka.ssl_cafile}: {exc}") from exc
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile:
        password = kafka.ssl_password.get_secret_value() if kafka.ssl_password else None
        try:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile, password=password)
        except (OSError, ssl.SSLError) as exc:
            # The exception text never contains the password; the paths are not secret.
            raise SettingsError(f"kafka.ssl_certfile/ssl_keyfile: cannot load the client certificate "
                                f"{kafka.ssl_certfile} (key {kafka.ssl_keyfile or 'in the same file'}): {exc}") from exc
    return context


def kafka_security_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Security keyword arguments for every Kafka client (kafka-python and aiokafka share the names)."""
    config: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = kafka_ssl_context(kafka)
    if context is not None:
        config["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        # Validated at load: a SASL protocol always has a mechanism, a username and a password.
        assert kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return config


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust's ``broker_credentials`` for the same settings (None for PLAINTEXT)."""
    import faust

    config = kafka_security_config(kafka)
    if "sasl_mechanism" in config:
        return faust.SASLCredentials(username=config["sasl_plain_username"],
                                     password=config["sasl_plain_password"],
                                     ssl_context=config.get("ssl_context"),
                                     mechanism=config["sasl_mechanism"])
    if "ssl_context" in config:
        return faust.SSLCredentials(config["ssl_context"])
    return None


def kafka_failure_hint(kafka: KafkaSettings) -> str:
    """Appended to "cannot reach Kafka" errors: kafka-python reports a refused login or TLS handshake only as a
    bootstrap timeout, so say which security was in use (never the secrets)."""
    if kafka.security_protocol == "PLAINTEXT":
        return ""
    how = " ".join(x for x in (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username and
                               f"user {kafka.sasl_username}") if x)
    return (f" [{how}: a refused login or TLS handshake also ends like this; check the credentials, "
            "kafka.ssl_cafile and that the broker's listener speaks this protocol]")
