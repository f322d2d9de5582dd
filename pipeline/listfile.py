"""The YAML list files people edit by hand (the feed list, the alert rules): read one, say what is wrong in it.

Both readers share this so that each file fails the same way, with the file named in the message. It imports
neither Faust nor Elasticsearch: ``connectors/feedlist.py`` uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.errors import SettingsError

__all__ = ["read_yaml_list", "validation_problems"]


def read_yaml_list(path: Path, key: str, *, what: str, not_a_list: str) -> list[Any]:
    """The entries under ``key`` of the YAML mapping in ``path``; [] when the file is empty or has no ``key``.

    Raises:
        SettingsError: the file is missing (``"<path>: <what> not found"``), unreadable, not UTF-8 or not YAML,
            not a mapping, or ``key`` holds something other than a list (``"<path>: <not_a_list>"``).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: {what} not found") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from exc
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        # A bare list or scalar would otherwise read as "no entries": every feed or rule silently gone.
        raise SettingsError(f"{path}: expected a mapping with a `{key}:` list, got {type(data).__name__}")
    entries = data.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise SettingsError(f"{path}: {not_a_list}")
    return entries


def validation_problems(exc: ValidationError, *, whole: str) -> str:
    """Every problem pydantic found, ``key: message`` joined by ``;`` (``whole`` when it is about the whole)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or whole}: {e['msg']}" for e in exc.errors())
