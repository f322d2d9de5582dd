"""Keyword alerting: rules, matching with `newsflow search` semantics, channels, digests (docs/alerting.md)."""
