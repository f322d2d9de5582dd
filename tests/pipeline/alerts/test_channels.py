"""Alert channels (pipeline.alerts.channels): the webhook signature."""

from __future__ import annotations

import hashlib
import hmac


def test_signature_is_hmac_of_exact_body() -> None:
    from pipeline.alerts.channels import sign

    body = b'{"kind":"alert"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
