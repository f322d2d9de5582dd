"""Address policy: which IPs a fetch may talk to."""

from __future__ import annotations

import pytest

from connectors.netguard import check_address, is_public_ip
from pipeline.errors import AddressRefused


@pytest.mark.parametrize(("ip", "public"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("224.0.0.1", False), ("0.0.0.0", False), ("240.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("100.64.0.1", False),
], ids=lambda v: str(v))
def test_is_public_ip(ip: str, public: bool) -> None:
    assert is_public_ip(ip) is public


@pytest.mark.parametrize("url", ["http://127.0.0.1/feed", "http://localhost:8080/x", "https://[::1]/",
                                 "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/rss"])
async def test_private_hosts_refused(url: str) -> None:
    with pytest.raises(AddressRefused):
        await check_address(url, allow_private=False)


async def test_private_hosts_allowed_when_configured() -> None:
    await check_address("http://127.0.0.1/feed", allow_private=True)
