"""The connectors package's public surface is a contract (httpx's test_exported_members)."""

from __future__ import annotations

import inspect

import connectors

# Imported for annotations only; not part of the surface.
_HELPERS = {"annotations", "asyncio", "Path", "Settings", "StopSignal"}


def test_all_is_the_public_surface() -> None:
    public = {name for name, value in vars(connectors).items()
              if not name.startswith("_") and not inspect.ismodule(value)} - _HELPERS
    assert set(connectors.__all__) == public
    assert {"poll_once", "apoll_once", "run_connector", "FeedSpec", "PollSummary"} <= set(connectors.__all__)
