"""Address policy and size guards: which hosts a fetch may talk to and how many bytes it may read."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from pipeline.errors import AddressRefused, BodyTooLarge, FeedUnreachable

__all__ = ["check_address", "is_public_ip", "read_capped"]


def is_public_ip(ip: str) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local, multicast or reserved)."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    )


async def check_address(url: str, *, allow_private: bool, feed_url: str = "") -> None:
    """Resolve the URL's host and refuse it when any address it resolves to is not public.

    Every address is checked (not just the first) because the HTTP client may pick any of them.
    DNS rebinding between this check and the connect stays possible; the cheap check still stops
    the common case of a feed URL (or a redirect) pointing at an internal service.

    Raises:
        AddressRefused: a private/loopback/link-local/multicast/reserved address and ``allow_private`` is off.
        FeedUnreachable: the host does not resolve.
    """
    if allow_private:
        return
    host = urlsplit(url).hostname
    if not host:
        raise FeedUnreachable(f"no host in URL {url!r}", feed_url=feed_url or url)
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise FeedUnreachable(f"cannot resolve {host}: {exc}", feed_url=feed_url or url) from exc
        addresses = sorted({str(info[4][0]).split("%")[0] for info in infos})
    for ip in addresses:
        if not is_public_ip(ip):
            raise AddressRefused(
                f"{host} resolves to non-public address {ip}; set poll.allow_private_hosts "
                "(NEWSFLOW_ALLOW_PRIVATE_HOSTS=1) to allow it",
                feed_url=feed_url or url,
            )


async def read_capped(chunks: AsyncIterator[bytes], limit: int, *, feed_url: str) -> bytes:
    """Join decoded (decompressed) chunks, stopping as soon as ``limit`` bytes are passed.

    Counting the decompressed stream is what guards against gzip bombs: a 10 kB body that inflates
    to gigabytes is stopped at ``limit`` without ever holding more than one chunk over it.
    """
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body passed the {limit} byte cap (after decompression)", feed_url=feed_url)
        parts.append(chunk)
    return b"".join(parts)
