from pathlib import Path

import pytest

from pipeline.errors import SettingsError
from pipeline.settings import DEFAULT_CONFIG_FILE, Settings, load_settings


def test_defaults_load_from_the_shipped_yaml() -> None:
    s = load_settings(environ={})
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.es.url == "http://127.0.0.1:9200"
    assert s.stack.kafka_version.startswith("4.")


def _shipped_values() -> list[tuple[str, object, str]]:
    """(dotted key, value, its line) of every value set in config/newsflow.yaml, with the line for its comment."""
    import yaml

    text = DEFAULT_CONFIG_FILE.read_text(encoding="utf-8")
    lines = text.splitlines()
    found: list[tuple[str, object, str]] = []

    def walk(node: yaml.Node, prefix: str) -> None:
        assert isinstance(node, yaml.MappingNode)
        for key, value in node.value:
            if isinstance(value, yaml.MappingNode):
                walk(value, f"{prefix}{key.value}.")
            else:
                found.append((prefix + key.value, yaml.safe_load(yaml.serialize(value)),
                              lines[key.start_mark.line]))

    walk(yaml.compose(text), "")
    return found


def test_the_shipped_yaml_restates_only_the_models_defaults() -> None:
    """config/newsflow.yaml is the template operators copy: every value in it is the model's default (the one
    place defaults are set, pipeline/settings.py) unless its line says ``# override``, so the two cannot drift."""
    defaults = Settings().model_dump(mode="json")
    values = _shipped_values()
    assert len(values) > 40  # the walk found the file's values
    for dotted, value, line in values:
        default: object = defaults
        for part in dotted.split("."):
            assert isinstance(default, dict) and part in default, f"{dotted}: not a setting"
            default = default[part]
        if "# override" not in line:
            assert value == default, f"{dotted}: {value!r} in config/newsflow.yaml, {default!r} in the model; " \
                                     "change the model or mark the line '# override'"


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
