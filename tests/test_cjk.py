"""Words in every script (issue 16 part 2): Chinese, Japanese and German notes found lexically
through the real Service (manifest + Chroma + model), the ``chunks_cjk`` table kept in step with
the chunks, and filled when an older manifest is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from semdexd.search import SearchRequest, request_filter
from semdexd.search.terms import QueryTerms, lexical_queries, phrases, tokens, word_count
from semdexd.store import cjk
from semdexd.store.manifest import SCHEMA_VERSION, ChunkRow, FileUpdate, Manifest
from tests.support import Instance, running_service

NOTES = {
    "ja/sourdough.md": "# 天然酵母の世話\n\nサワードウのスターターは冷蔵庫で保存します。週に一度、古い種を半分捨てて、"
                       "同じ重さのライ麦粉と水を足してください。表面に灰色の液体が出たら、空腹のサインです。"
                       "かき混ぜてから餌をやれば、数時間でまた泡が立ちます。",
    "ja/backup.md": "# バックアップの手順\n\n毎晩、外付けディスクに写真と書類を同期します。Dockerを使うサービスの"
                    "設定ファイルも忘れずにコピーしてください。",
    "zh/tax.md": "# 个人所得税年度汇算\n\n每年三月到六月之间，需要在个人所得税App里提交年度汇算申报表。"
                 "先核对工资薪金和劳务报酬的收入，再填写专项附加扣除，比如子女教育、住房贷款利息和赡养老人。"
                 "如果预缴的税款多于应纳税额，就可以申请退税。",
    "zh/travel.md": "# 去杭州旅行\n\n周末坐高铁去杭州，在西湖边散步，晚上吃了东坡肉和龙井虾仁。",
    "de/fahrrad.md": "# Kette wechseln am Fahrrad\n\nDie alte Kette mit dem Kettennieter öffnen, die neue Kette "
                     "über Ritzel und Kettenblatt legen und mit dem Kettenschloss schließen. Danach die "
                     "Schaltung nachstellen und die Bremsbeläge prüfen: abgefahrene Beläge quietschen.",
    "de/kaese.md": "# Käsespätzle\n\nSpätzleteig aus Mehl, Eiern und Wasser, dazu reichlich geriebener Käse "
                   "und Röstzwiebeln.",
    "en/bread.md": "Knead the dough, let it rise overnight, bake at 230 degrees until golden.",
    "en/taxes.md": "File the annual income tax return before April; keep the receipts for deductions.",
}

# (query, the note it must find first lexically, every word of the query in it)
LEXICAL = [
    ("冷蔵庫", "ja/sourdough.md"),                 # 3-character word: a phrase of bigrams
    ("スターター 保存", "ja/sourdough.md"),         # kana + kanji
    ("餌", "ja/sourdough.md"),                      # 1 character: a prefix query on the bigrams
    ("Docker", "ja/backup.md"),                    # a Latin word glued to Japanese (Dockerを)
    ("退税", "zh/tax.md"),                          # 2-character word
    ("个人所得税 申报表", "zh/tax.md"),
    ("专项附加扣除", "zh/tax.md"),
    ("Kettenschloss", "de/fahrrad.md"),
    ("Bremsbeläge prüfen", "de/fahrrad.md"),
    ("Bremsbelage", "de/fahrrad.md"),              # without the umlaut: folded as FTS5 folds it
    ("Käse", "de/kaese.md"),
]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, model_info: Any) -> Any:
    tmp = tmp_path_factory.mktemp("cjk")
    folder = write_notes(tmp / "notes")
    with running_service(Instance(tmp, [folder], pool={"workers": 2})) as service:
        service.folder = folder
        yield service


def write_notes(folder: Path) -> Path:
    for rel, text in NOTES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text + "\n", encoding="utf-8")
    return folder


def search(svc: Any, query: str, mode: str) -> list[dict[str, Any]]:
    req = SearchRequest(query=query, mode=mode)
    return svc.searcher.search(req, request_filter(req, (str(svc.folder),)))


def rel(svc: Any, hit: dict[str, Any]) -> str:
    return str(Path(hit["path"]).relative_to(svc.folder))


def test_a_japanese_query_worded_unlike_its_note_still_finds_it(svc: Any) -> None:
    """"スターターの保存" (the note says スターターは…保存): the bigrams across the particle (ーの, の保)
    are in no note, the others are."""
    hits = search(svc, "スターターの保存", "lexical")
    assert rel(svc, hits[0]) == "ja/sourdough.md" and 0.5 < hits[0]["signals"]["coverage"] < 1.0


@pytest.mark.parametrize(("query", "note"), LEXICAL)
def test_a_query_in_each_language_finds_its_note_lexically(svc: Any, query: str, note: str) -> None:
    hits = search(svc, query, "lexical")
    assert hits and rel(svc, hits[0]) == note, [rel(svc, h) for h in hits]
    top = hits[0]["signals"]
    assert top["bm25"] is not None and top["coverage"] == 1.0, top
    assert hits[0]["score"] >= 0.8, "every word of the query is in the note, and it is the best BM25"
    assert all(h["score"] < hits[0]["score"] for h in hits[1:]), "no other note holds them all"


def test_cjk_phrase_found_exactly_and_hybrid_keeps_it_first(svc: Any) -> None:
    hits = search(svc, "专项附加扣除", "hybrid")
    assert rel(svc, hits[0]) == "zh/tax.md" and hits[0]["signals"]["phrase"] is True
    scrambled = search(svc, "附加专项扣除", "lexical")  # the same characters, not as written
    assert rel(svc, scrambled[0]) == "zh/tax.md" and scrambled[0]["signals"]["phrase"] is False
    assert scrambled[0]["score"] < hits[0]["score"]


def test_a_word_the_notes_do_not_hold_finds_nothing_lexically(svc: Any) -> None:
    assert search(svc, "自行车", "lexical") == []    # "bicycle" in Chinese: no note says it
    assert search(svc, "保险", "lexical") == []      # "insurance": 保 and 险 apart are not the word


# Meaning across wording needs a multilingual model: (query, note) sharing no word with the note.
SEMANTIC = [
    ("パン種の手入れ", "ja/sourdough.md"),          # "caring for bread starter"
    ("如何申请退还多缴的税款", "zh/tax.md"),          # "how to get back overpaid tax"
    ("Fahrradkette austauschen", "de/fahrrad.md"),  # "replace a bicycle chain"
]


@pytest.mark.parametrize("model", ["minilm", "e5"])
@pytest.mark.parametrize(("query", "note"), SEMANTIC)
def test_a_query_in_each_language_finds_its_note_by_meaning(request: pytest.FixtureRequest, tmp_path: Path,
                                                            model: str, query: str, note: str) -> None:
    """Meaning across languages needs the multilingual model (``e5_model``: the ``[model]``
    section selecting multilingual-e5-small)."""
    if model == "minilm":
        pytest.skip("all-MiniLM-L6-v2 (the default) is English-only: meaning in Chinese/Japanese/German "
                    "is not expected of it")
    model_section = request.getfixturevalue("e5_model")
    folder = write_notes(tmp_path / "notes")
    with running_service(Instance(tmp_path, [folder], model=model_section)) as service:
        service.folder = folder
        hits = search(service, query, "semantic")
        assert hits and rel(service, hits[0]) == note, [rel(service, h) for h in hits]
        scores = [h["score"] for h in hits]
        assert scores[0] < 1.0 and scores[-1] < scores[0] - 0.1, f"scores spread by the model's own anchors: {scores}"


# ------------------------------------------------------------ units, manifest


def rows(path: str, texts: list[str]) -> tuple[ChunkRow, ...]:
    return tuple(ChunkRow(f"{path}#{t}", path, i, t, i + 1, i + 1, 0, len(t), t) for i, t in enumerate(texts))


def ids(m: Manifest, query: str) -> set[str]:
    return {cid for _, index, match in lexical_queries(query) for cid, _ in m.lexical.search(match, 50, None, index)}


def cjk_rows(db: Path) -> int:
    con = sqlite3.connect(db)
    con.execute("INSERT INTO chunks_cjk(chunks_cjk) VALUES ('integrity-check')")
    try:
        return int(con.execute("SELECT count(*) FROM chunks_cjk").fetchone()[0])
    finally:
        con.close()


def test_cjk_units_index_text_and_words() -> None:
    assert cjk.index_text("保存方法") == "保存 存方 方法 法" and cjk.index_text("plain English") is None
    assert cjk.index_text("Dockerを使う") == "docker を使 使う う"
    assert tokens("Dockerを使う Käse") == ["docker", "を使", "使う", "kase"]
    assert tokens("parse_config getUser") == ["parse", "config", "getuser"], "Latin split unchanged"
    assert phrases("冷蔵庫") == [["冷蔵", "蔵庫"]] and phrases("退税") == [], "2 characters: one word"
    assert word_count("个人所得税") == 3 and word_count("parse config x") == 3
    assert [m for _, i, m in lexical_queries("parse_config x") if i == "words"] == ['"parse config x"',
                                                                                     '"parse_config" OR "x"']
    assert [m for _, i, m in lexical_queries('"rye flour" "保存方法"') if i == "cjk"][0] == \
        '"rye flour" AND "保存 存方 方法"', "every quoted phrase, in the one table that can hold them all"
    terms = QueryTerms.build("保存方法 Python", 100, {})
    assert terms.evidence("冷蔵庫で保存方法を。Pythonで") == (1.0, False), "Python borders CJK: a word"
    assert terms.evidence("保存方法、python") == (1.0, True) and terms.evidence("保存の方法")[0] < 1.0
    assert QueryTerms.build("kase", 100, {}).evidence("Käse") == (1.0, False)


def test_chunks_cjk_follows_the_chunks(tmp_path: Path) -> None:
    """Inserted, replaced and deleted with its chunks (contentless: a wrong 'delete' would show in
    the integrity check and in what the table still matches)."""
    m = Manifest(tmp_path / "m.sqlite3")
    m.commit_files([FileUpdate("/r/a.md", 1, 1, "h", "indexed", chunks=rows("/r/a.md", ["税务局的表格", "no cjk here"])),
                    FileUpdate("/r/b.md", 1, 1, "h", "indexed", chunks=rows("/r/b.md", ["酵母"]))])
    a0 = "/r/a.md#税务局的表格"
    assert ids(m, "税") == {a0} and ids(m, "表格") == {a0} and ids(m, "母") == {"/r/b.md#酵母"}
    assert ids(m, "务局") == {a0} and ids(m, "局务") == set()
    assert cjk_rows(tmp_path / "m.sqlite3") == 2, "only chunks holding CJK have a row"
    assert m.lexical.doc_freqs(["税", "表格", "酵母", "here"])[1] == {"税": 1, "表格": 1, "酵母": 1, "here": 1}
    m.commit_files([FileUpdate("/r/a.md", 2, 2, "h2", "indexed", chunks=rows("/r/a.md", ["发票"]))],
                   deleted=["/r/b.md"])
    assert ids(m, "税") == set() and ids(m, "酵母") == set() and ids(m, "发票") == {"/r/a.md#发票"}
    assert cjk_rows(tmp_path / "m.sqlite3") == 1


@pytest.mark.parametrize("older", ["3", "4"])
def test_an_older_manifest_gains_chunks_cjk_on_open(tmp_path: Path, older: str) -> None:
    db = tmp_path / "m.sqlite3"
    m = Manifest(db)
    m.commit_files([FileUpdate("/r/a.md", 1, 1, "h", "indexed", chunks=rows("/r/a.md", ["冷蔵庫で保存", "Kette"]))])
    m.close()
    con = sqlite3.connect(db)  # as a schema 3/4 manifest was: no chunks_cjk, no trigger
    con.executescript(f"DROP TRIGGER chunks_cjk_ai; DROP TRIGGER chunks_cjk_ad; DROP TABLE chunks_cjk; "
                      f"UPDATE meta SET value = '{older}' WHERE key = 'schema';")
    con.close()
    m = Manifest(db)
    assert m.get_meta("schema") == str(SCHEMA_VERSION) == "6"
    assert ids(m, "冷蔵庫") == {"/r/a.md#冷蔵庫で保存"} and ids(m, "Kette") == {"/r/a.md#Kette"}
    assert cjk_rows(db) == 1
    m.commit_files([], deleted=["/r/a.md"])
    assert cjk_rows(db) == 0, "the trigger made by the migration deletes with the chunk"
