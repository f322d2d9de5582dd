from pathlib import Path

import pytest

from pipeline.errors import SettingsError
from pipeline.settings import load_settings


def test_defaults_load_from_the_shipped_yaml() -> None:
    s = load_settings(environ={})
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.es.url == "http://127.0.0.1:9200"
    assert s.stack.kafka_version.startswith("4.")


@pytest.mark.parametrize(
    ("name", "value", "path", "expected"),
    [
        ("NEWSFLOW_KAFKA_BOOTSTRAP", "b-1:9092,b-2:9092", ("kafka", "bootstrap"), "b-1:9092,b-2:9092"),
        ("NEWSFLOW_ES_URL", "https://es.example.org:9243/", ("es", "url"), "https://es.example.org:9243"),
        ("NEWSFLOW_DATA_DIR", "/var/lib/newsflow", ("data_dir",), Path("/var/lib/newsflow")),
        ("NEWSFLOW_ALLOW_PRIVATE_HOSTS", "1", ("poll", "allow_private_hosts"), True),
        ("NEWSFLOW_POLL_INTERVAL_S", "120", ("poll", "interval_s"), 120),
        ("NEWSFLOW_STACK_ES_HEAP", "2G", ("stack", "es_heap"), "2g"),
    ],
    ids=["kafka-bootstrap", "es-url", "data-dir", "alias-private-hosts", "poll-interval", "heap"],
)
def test_environment_overrides(name: str, value: str, path: tuple[str, ...], expected: object) -> None:
    s = load_settings(environ={name: value})
    obj: object = s
    for part in path:
        obj = getattr(obj, part)
    assert obj == expected


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"NEWSFLOW_KAFKA_BOOTSTRAP": "nowhere"}, "kafka.bootstrap"),
        ({"NEWSFLOW_ES_URL": "localhost:9200"}, "es.url"),
        ({"NEWSFLOW_POLL_INTERVAL_S": "soon"}, "poll.interval_s"),
        ({"NEWSFLOW_STACK_KAFKA_HEAP": "lots"}, "stack.kafka_heap"),
        ({"NEWSFLOW_KAFKA_BOOTSTARP": "x:1"}, "kafka.bootstarp: unknown key"),
    ],
    ids=["bootstrap", "es-url", "not-an-int", "heap", "typo"],
)
def test_bad_values_name_the_key(environ: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ=environ)
    assert names in str(err.value)


def test_yaml_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  partitions: 0\nsink:\n  batch_sise: 5\n")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    assert "kafka.partitions" in str(err.value)
    assert "sink.batch_sise: unknown key" in str(err.value)


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_secrets_do_not_render() -> None:
    s = load_settings(environ={"NEWSFLOW_ES_USERNAME": "elastic", "NEWSFLOW_ES_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s)
    assert s.es.password is not None and s.es.password.get_secret_value() == "hunter2"
