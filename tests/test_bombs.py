"""Memory bombs (issue 11.1): generated files that expand enormously (DOCX XML, PDF pages, a
9 MB one-line text, HTML) go through the daemon's extract + chunk path in a child process with
the real tokenizer, under a watchdog that kills the child past 600 MB resident (so a regression
cannot take the shared machine down). Each must end with a reason (truncated or skipped), within
the caps, and cost well under the 500 MB goal above the child's own baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from semdexd.bench import bombs
from semdexd.embed.model import ModelInfo

KILL_MB = 600
BOMB_BUDGET_MB = 250       # a bomb's own cost (peak minus the child's RSS after imports)

CASES = [
    # name, generator, expected status, words in the reason
    ("docx_zip_bomb", lambda p: bombs.docx_bomb(p / "bomb.docx", 96, 1 << 20), "skipped", "zip bomb"),
    ("docx_streamed", lambda p: bombs.docx_bomb(p / "big.docx", 12, 1 << 20), "indexed", "truncated"),
    ("pdf_stream", lambda p: bombs.pdf_stream_bomb(p / "stream.pdf", 21 << 20), "failed", "too large to read"),
    ("pdf_pages", lambda p: bombs.pdf_pages_bomb(p / "pages.pdf", 1100), "indexed", "truncated"),
    ("txt_one_line", lambda p: bombs.text_one_line(p / "one.txt", 9 << 20), "indexed", "truncated"),
    ("txt_no_spaces", lambda p: bombs.text_no_spaces(p / "b64.txt", 9 << 20), "indexed", "truncated"),
    ("html", lambda p: bombs.html_bomb(p / "page.html", 9 << 20), "indexed", "truncated"),
    ("txt_many_chunks", lambda p: bombs.text_lines(p / "lines.txt", 200_000), "indexed", "max_chunks_per_file"),
]


@pytest.mark.parametrize("name,make,status,words", CASES, ids=[c[0] for c in CASES])
def test_bomb_is_bounded(tmp_path: Path, make_config, model_info: ModelInfo, name: str, make,
                         status: str, words: str) -> None:
    cfg = make_config(tmp_path, index={"max_text_mb": 0.25, "max_chunks_per_file": 50})
    path = make(tmp_path)
    out = bombs.measure(path, name, cfg, model_info.tokenizer_file, model_info.passage_prefix,
                        model_info.max_tokens, kill_mb=KILL_MB, timeout=120)
    assert not out.killed, f"{name}: killed by the watchdog above {KILL_MB} MB: {out}"
    assert (out.status, words in out.reason) == (status, True), out
    assert out.chunks <= 50 and out.text_mb <= 0.25, out
    assert out.peak_rss_mb - out.baseline_rss_mb < BOMB_BUDGET_MB, out
