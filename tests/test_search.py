"""Hybrid search on a real index: identifiers and phrases, filters inside the store query, fusion."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from semdexd.api.types import ApiError
from semdexd.search import SearchRequest, fts_queries, phrase_query, request_filter
from semdexd.app.service import Service
from semdexd.index.backfill import keep_vectors
from tests.support import Instance, wait_for

NOTES = {
    "net/errors.md": "When the server drops us we log \"connection reset by peer\" and reconnect "
                     "with exponential backoff.",
    "net/timeouts.md": "Network hiccups: the socket may close unexpectedly or time out; retry later.",
    "net/client.py": "def parse_config(path):\n    \"\"\"Read the settings file.\"\"\"\n"
                     "    return tomllib.loads(open(path).read())\n",
    "net/settings.py": "def load_settings(path):\n    \"\"\"Read the configuration file and parse it.\"\"\"\n"
                       "    return json.load(open(path))\n",
    "cooking/bread.md": "Knead the dough, let it rise overnight, bake at 230 degrees until golden.",
    "cooking/cake.md": "Whisk eggs and sugar, fold in flour, bake the sponge in a moderate oven.",
    "travel/rome.md": "The Colosseum, the Forum and fresh pasta near Trastevere.",
    "notravel/rome.md": "Staying home: no Colosseum, no pasta near Trastevere, just bread.",
}
NOTES["space/planets.md"] = "\n\n".join(  # one file of several chunks, all about one thing
    f"## {name}\n\n{name} orbits the Sun. " + " ".join(
        f"Its {part} was observed through the telescope, measured against the background stars and "
        f"charted in the planetary survey, night after night." for part in ("orbit", "moons", "rings", "surface",
                                                                            "atmosphere", "axis"))
    for name in ("Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"))
for i in range(12):  # bread everywhere in "cooking": a folder filter must still fill the page
    NOTES[f"cooking/more/bread{i}.md"] = f"Bread variation {i}: sourdough loaf, crust and crumb, baking bread at home."


@pytest.fixture(scope="module")
def svc(tmp_path_factory, model_info):
    tmp = tmp_path_factory.mktemp("search")
    folder = tmp / "notes"
    for rel, text in NOTES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text + "\n")
    old = folder / "travel" / "rome.md"
    os.utime(old, (time.time() - 86400 * 30, time.time() - 86400 * 30))
    inst = Instance(tmp, [folder], pool={"workers": 2})
    service = Service(inst.config())
    service.start()
    wait_for(lambda: service.error or service.state() == "idle", timeout=180, what="index")
    assert service.error is None
    service.folder = folder  # type: ignore[attr-defined]
    yield service
    service.stop()
    inst.cleanup()


def search(svc: Service, query: str, anchors: tuple[str, ...] = (), **kw) -> list[dict]:
    req = SearchRequest(query=query, **kw)
    return svc.searcher.search(req, request_filter(req, anchors or (str(svc.folder),)))


def rel(svc: Service, hit: dict) -> str:
    return str(Path(hit["path"]).relative_to(svc.folder))


def test_identifier_query_ranks_its_chunk_first(svc):
    for mode in ("hybrid", "lexical"):
        assert rel(svc, search(svc, "parse_config", mode=mode)[0]) == "net/client.py"


def test_exact_phrase_ranks_its_chunk_first(svc):
    for mode in ("hybrid", "lexical"):
        assert rel(svc, search(svc, '"connection reset by peer"', mode=mode)[0]) == "net/errors.md"
        assert rel(svc, search(svc, "connection reset by peer", mode=mode)[0]) == "net/errors.md"


def test_meaning_without_shared_words(svc):
    assert rel(svc, search(svc, "ancient Italian amphitheatre", mode="semantic")[0]) == "travel/rome.md"


def test_folder_filter_is_applied_inside_the_store_query(svc):
    # "bread" matches most strongly in cooking/more/; filtered to net/, a post-filter over the
    # global top-k would come back (almost) empty: the filtered query must fill the page from net/.
    hits = search(svc, "baking bread", mode="semantic", paths=(str(svc.folder / "net"),), limit=4, per_file=1)
    assert len(hits) == 4
    assert all(rel(svc, h).startswith("net/") for h in hits)
    hits = search(svc, "baking bread", mode="hybrid", paths=(str(svc.folder / "cooking"),), limit=20)
    assert hits and all(rel(svc, h).startswith("cooking/") for h in hits)


def test_type_glob_and_since_filters(svc):
    assert {rel(svc, h) for h in search(svc, "read the file", types=("py",), limit=20)} == {"net/client.py", "net/settings.py"}
    assert all(rel(svc, h).startswith("travel/") for h in search(svc, "pasta", globs=("travel/*.md",)))
    recent = search(svc, "Colosseum Rome pasta", since=time.time() - 86400, limit=50)
    assert "travel/rome.md" not in {rel(svc, h) for h in recent}


def test_hybrid_keeps_a_result_both_modes_rank_first(svc):
    queries = ["parse_config", "knead the dough", "Colosseum", "whisk eggs and sugar", "exponential backoff",
               "sourdough loaf crust", "socket time out retry"]
    checked = 0
    for q in queries:
        sem = search(svc, q, mode="semantic", limit=5)
        lex = search(svc, q, mode="lexical", limit=5)
        if sem and lex and sem[0]["path"] == lex[0]["path"]:
            checked += 1
            assert search(svc, q, mode="hybrid", limit=5)[0]["path"] == sem[0]["path"], q
    assert checked >= 3


def test_hits_are_grouped_and_merged(svc):
    hits = search(svc, "bread", limit=50, per_file=1)
    paths = [h["path"] for h in hits]
    assert len(paths) == len(set(paths))


def test_fts_query_building():
    assert fts_queries("parse_config") == ['"parse config"', '"parse_config"']  # FTS5 reads both as a phrase
    assert fts_queries("parse_config x") == ['"parse config x"', '"parse_config" OR "x"']
    assert fts_queries("reset by peer") == ['"reset by peer"', '"reset" OR "by" OR "peer"']
    assert fts_queries('"reset by peer" now')[0] == '"reset by peer"'
    assert fts_queries("bread") == ['"bread"']  # a plain word is not an exact-match request
    assert phrase_query("bread") is None and phrase_query("getUser") == '"getuser"'
    assert fts_queries("!!!") == []


def test_snippet_line_points_at_the_snippet(svc):
    for hit in search(svc, "exponential backoff reconnect", limit=5) + search(svc, "parse_config", limit=3):
        lines = Path(hit["path"]).read_text().split("\n")
        assert hit["start_line"] <= hit["snippet_line"] <= hit["end_line"]
        assert lines[hit["snippet_line"] - 1].rstrip() == hit["snippet"].split("\n")[0]


def test_broad_filter_fallback_still_applies_every_condition(svc, monkeypatch):
    import semdexd.search.searcher as search_mod

    monkeypatch.setattr(search_mod, "PREFILTER_MAX", 0)  # every filter counts as "not selective"
    hits = search(svc, "pasta bread cake", mode="semantic", globs=("travel/*.md",), limit=10)
    assert hits and all(rel(svc, h).startswith("travel/") for h in hits)
    recent = search(svc, "Colosseum Rome pasta", mode="semantic", since=time.time() - 86400, limit=50)
    assert "travel/rome.md" not in {rel(svc, h) for h in recent}


def test_similar_is_not_crowded_out_by_a_big_files_own_chunks(svc, monkeypatch):
    import semdexd.search.searcher as search_mod

    path = str(svc.folder / "space" / "planets.md")
    assert len(svc.manifest.chunks_of(path)) >= 4
    monkeypatch.setattr(search_mod, "CANDIDATES", 2)
    monkeypatch.setattr(search_mod, "OWN_ROOM", 1)  # the file has more chunks than the room first kept for them
    hits = svc.searcher.similar(path, None, 2)
    assert len(hits) == 2 and path not in {h["path"] for h in hits}


def test_manifest_keeps_every_chunks_vector_as_the_store_has_it(svc):
    ids = sorted(svc.manifest.all_chunk_ids())
    kept, stored = svc.manifest.copies.vectors(ids), svc.store.vectors(ids)
    assert set(kept) == set(stored) == set(ids)
    assert min(float(kept[i] @ stored[i]) for i in ids) > 0.9999


def test_an_index_without_kept_vectors_gives_the_same_answers(svc):
    """Chunks written before the manifest kept vectors: their cosines come from the store, and
    a start copies their vectors into the manifest."""
    import sqlite3

    queries = [("knead the dough", {}), ("parse_config", {}), ("bread", {"paths": (str(svc.folder / "cooking"),)}),
               ("socket time out retry", {"mode": "semantic", "paths": (str(svc.folder / "net"),)})]
    before = [search(svc, q, limit=20, **kw) for q, kw in queries]
    assert svc.settled.wait(60)  # the start's own copying of vectors is over
    [path] = (svc.cfg.paths.data_dir / "index").glob("*/manifest.sqlite3")
    db = sqlite3.connect(path)
    saved = db.execute("SELECT id, vec FROM chunks").fetchall()
    try:
        with db:
            db.execute("UPDATE chunks SET vec = NULL")
        assert svc.manifest.copies.vectors([cid for cid, _ in saved]) == {}
        after = [search(svc, q, limit=20, **kw) for q, kw in queries]
        assert keep_vectors(svc.manifest, svc.store, svc.indexer.stopping, page=7) == len(saved)  # what a start does: copied from the store
        restored = svc.manifest.copies.vectors([cid for cid, _ in saved])
        assert set(restored) == {cid for cid, _ in saved}  # (float16 of the store's vector: the last bit may differ)
        assert min(float(restored[cid] @ np.frombuffer(v, np.float16)) for cid, v in saved) > 0.9999
    finally:
        with db:
            db.executemany("UPDATE chunks SET vec = ? WHERE id = ? AND vec IS NULL", [(v, cid) for cid, v in saved])
        db.close()
    for b, a in zip(before, after):
        assert b and [(h["path"], h["start_line"]) for h in b] == [(h["path"], h["start_line"]) for h in a]
        assert max(abs(x["score"] - y["score"]) for x, y in zip(b, a)) <= 1e-3


# ---------------------------------------------------------------- issue 9: score, cutoff, globs, notices


def ask(svc: Service, **params) -> dict:
    from semdexd.app.handlers import Api

    return Api(svc).handlers()["search"]({"cwd": str(svc.folder), **params})


def test_one_score_scale_with_signals_in_every_mode(svc):
    for mode in ("hybrid", "semantic", "lexical"):
        hits = search(svc, "knead the dough", mode=mode, limit=20)
        assert hits and all(0.0 <= h["score"] <= 1.0 for h in hits), mode
        assert {"cosine", "bm25", "phrase", "coverage"} <= set(hits[0]["signals"])
        assert rel(svc, hits[0]) == "cooking/bread.md", mode
    top = search(svc, "parse_config", mode="lexical")[0]
    assert top["signals"]["phrase"] is True and top["score"] >= 0.8
    assert search(svc, "parse_config", mode="hybrid")[0]["score"] >= 0.8


def test_cutoff_turns_filler_into_weak_hits(svc):
    answered = ask(svc, query="whisk eggs and sugar for a sponge cake")
    assert answered["hits"] and rel(svc, answered["hits"][0]) == "cooking/cake.md"
    filler = ask(svc, query="symptoms of vitamin D deficiency in adults")
    assert filler["hits"] == [] and 0 < len(filler["weak"]) <= 3
    assert all(h["score"] < filler["min_score"] for h in filler["weak"])
    assert ask(svc, query="symptoms of vitamin D deficiency in adults", min_score=0.0)["hits"]
    with pytest.raises(ApiError):
        ask(svc, query="x", min_score=1.5)


def test_globs_have_gitignore_semantics_anchored_at_the_searched_folder(svc):
    def paths(**params) -> set[str]:
        return {rel(svc, h) for h in ask(svc, query="bread pasta Rome", limit=50, min_score=0, **params)["hits"]}

    assert paths(glob="travel/*.md") == {"travel/rome.md"}          # not notravel/rome.md
    assert "notravel/rome.md" in paths(glob="*/rome.md")
    deep = paths(glob="cooking/**/*.md")
    assert "cooking/bread.md" in deep and "cooking/more/bread1.md" in deep
    assert paths(glob="*.md", path=["travel", "notravel"]) == {"travel/rome.md", "notravel/rome.md"}
    assert not any(p.startswith("cooking/more/") for p in paths(glob=["cooking/**", "travel/*"], exclude="more/"))


def test_a_filter_matching_no_indexed_file_says_so(svc):
    result = ask(svc, query="bread", path="/nope")
    assert result["hits"] == [] and result["notice"] == "no indexed files under /nope"
    with pytest.raises(ApiError, match="indexed types: md, py"):
        ask(svc, query="bread", type="pyy")


def test_search_while_files_wait_reports_indexing_progress(svc):
    svc.indexer.paused.set()
    try:
        for i in range(3):
            (svc.folder / "zz" / f"late{i}.md").parent.mkdir(exist_ok=True)
            (svc.folder / "zz" / f"late{i}.md").write_text(f"late note {i}\n")
        svc.indexer.scan()
        result = ask(svc, query="bread")
        progress = result["indexing"]
        assert progress["total"] - progress["done"] >= 3
    finally:
        svc.indexer.paused.clear()
    wait_for(lambda: "indexing" not in ask(svc, query="bread"), timeout=60, what="the late files indexed")
