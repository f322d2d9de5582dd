"""pipeline.index without a server: the index template body."""

from __future__ import annotations

import pytest

from pipeline.index import build_template, template_version
from pipeline.settings import Settings


@pytest.mark.parametrize("analyzer", ["english", "standard"])
def test_template_fills_analyzer_alias_and_prefix(analyzer: str) -> None:
    settings = Settings()
    body = build_template(settings, analyzer)
    assert "__" not in str({k: v for k, v in body.items()})
    assert body["index_patterns"] == ["news-*"]
    assert body["template"]["aliases"] == {"news": {}}
    assert body["template"]["settings"]["analysis"]["analyzer"]["newsflow_text"] == {"type": analyzer}
    assert body["template"]["mappings"]["_meta"]["text_analyzer"] == analyzer
    assert body["version"] == template_version(settings)
    props = body["template"]["mappings"]["properties"]
    assert props["title"]["analyzer"] == "newsflow_text" and props["title"]["fields"]["keyword"]["type"] == "keyword"
    assert props["word_count"]["type"] == "integer"
    assert props["published_at"]["type"] == "date" and props["indexed_at"]["type"] == "date"
