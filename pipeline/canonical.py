"""Canonical URLs and text fingerprints: pure functions shared by the connector and dedupe.

Two URLs of one article must map to one string: tracking parameters, fragments, default ports,
``www.``/``m.``/``amp.`` hosts, AMP path variants and trailing slashes are removed; scheme and host
are lower-cased; the remaining query parameters are sorted.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["canonical_url", "normalise_text", "stable_id", "text_fingerprint"]

_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "hsa_", "__hs", "_hs", "oly_", "vero_", "ga_")
_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mkt_tok",
        "ref", "ref_src", "ref_url", "referrer", "source", "src", "cmpid", "cmp", "campaign",
        "share", "shared", "smid", "sr_share", "ito", "ns_mchannel", "ns_source", "ns_campaign",
        "ns_linkname", "ns_fee", "at_medium", "at_campaign", "outputtype", "amp", "output",
        "rss", "feed", "xtor", "guccounter", "s_cid", "spm", "cid", "mbid", "rpc", "soc_src", "soc_trk",
    }
)
_MOBILE_HOST = re.compile(r"^(?:www|m|mobile|amp)\.(?=[^.]+\.)")
_AMP_PATH = re.compile(r"(?:/amp/?$|\.amp(?=\.html?$|$)|/amp(?=/))", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str | None) -> str | None:
    """Return the canonical form of an article URL, or None for something that is not an http(s) URL.

    >>> canonical_url("https://M.Example.com/news/story/amp/?utm_source=x&id=7#top")
    'https://example.com/news/story?id=7'
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = _MOBILE_HOST.sub("", parts.hostname.lower().rstrip("."))
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _AMP_PATH.sub("", re.sub(r"/{2,}", "/", parts.path)) or "/"
    if path != "/":
        path = path.rstrip("/")
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING_PARAMS and not k.lower().startswith(_TRACKING_PREFIXES)
    )
    # http and https copies of one page are one article: https is the canonical scheme.
    return urlunsplit(("https", netloc, path, urlencode(query), ""))


_WORD = re.compile(r"\w+", re.UNICODE)


def normalise_text(text: str) -> str:
    """NFKC, case-folded words joined by single spaces: what fingerprints and shingles are built on."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def text_fingerprint(text: str) -> str:
    """A hash of the normalised text: equal for copies differing only in spacing, case or punctuation."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:32]


def stable_id(value: str) -> str:
    """A short stable id for a canonical URL or a fingerprint (the article ``id``)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:24]
