"""Alert channels (pipeline.alerts.channels): the webhook signature."""

from __future__ import annotations

import hashlib
import hmac

import pytest


def test_signature_is_hmac_of_exact_body() -> None:
    from pipeline.alerts.channels import sign

    body = b'{"kind":"alert"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_webhook_proxy_comes_from_the_environment_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    from yarl import URL

    from pipeline.alerts import channels

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    channels._env_proxy.cache_clear()
    try:
        proxy, _ = channels._env_proxy(URL("http://hooks.example.org/a").origin())
        assert proxy == URL("http://proxy.example:3128")
        assert channels._env_proxy(URL("http://internal.example/x").origin()) == (None, None)  # NO_PROXY
        monkeypatch.delenv("HTTP_PROXY")
        # Looked up once per origin: a running worker's environment does not change.
        assert channels._env_proxy(URL("http://hooks.example.org/b").origin())[0] == URL("http://proxy.example:3128")
        assert channels._env_proxy(URL("http://other.example.org/").origin()) == (None, None)
    finally:
        channels._env_proxy.cache_clear()
