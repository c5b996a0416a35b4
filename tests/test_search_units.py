"""Pure parts of search: gitignore globs, query terms and coverage, the score scale, dev-set plumbing."""

from __future__ import annotations

import re

import pytest

from semdexd.bench import devsets
from semdexd.search import scoring
from semdexd.search.globs import GlobError, glob_regexes
from semdexd.search.terms import QueryTerms, phrases, tokens, words_query


def matches(glob: str, path: str, anchors: tuple[str, ...] = ("/n",)) -> bool:
    return any(re.search(r, path) for r in glob_regexes(glob, anchors))


def test_globs_follow_gitignore_rules():
    assert matches("src/**/*.py", "/n/src/a.py") and matches("src/**/*.py", "/n/src/x/y/a.py")
    assert matches("travel/*.md", "/n/travel/rome.md") and not matches("travel/*.md", "/n/notravel/x.md")
    assert not matches("travel/*.md", "/n/a/travel/rome.md"), "a glob with a slash is anchored"
    assert matches("*.md", "/n/a/b/c.md") and not matches("*.md", "/elsewhere/c.md")
    assert matches("/n/**/*.md", "/n/x/c.md", anchors=())
    assert matches("*.md", "/m/c.md", anchors=("/n", "/m"))
    with pytest.raises(GlobError):
        glob_regexes("!x", ("/n",))


def test_terms_split_like_fts5_and_weigh_rare_words_more():
    assert tokens("parse_config getUser") == ["parse", "config", "getuser"]
    assert phrases("parse_config") == [["parse", "config"]] and phrases("bread") == []
    terms = QueryTerms.build("the sourdough", total=1000, doc_freq={"the": 900, "sourdough": 3})
    assert terms.coverage({"sourdough"}) > 0.9 > 0.1 > terms.coverage({"the"})
    assert terms.has_phrase(["eat", "the", "sourdough", "now"]) and not terms.has_phrase(["sourdough", "the"])


def test_words_found_in_most_chunks_are_left_out_of_the_any_word_query():
    terms = QueryTerms.build("how To read a zip_file", total=1000, doc_freq={"to": 400, "a": 900, "zip": 30, "how": 50})
    assert terms.common == {"to", "a"} and set(terms.weights) == {"how", "to", "read", "a", "zip", "file"}
    assert words_query("how To read a zip_file", terms.common) == '"how" OR "read" OR "zip_file"'
    assert words_query("to a", terms.common) == '"to" OR "a"', "all common: all kept"
    assert words_query("how To read", ()) == '"how" OR "To" OR "read"'


def test_evidence_from_text_equals_coverage_and_phrase_of_its_tokens():
    """`QueryTerms.evidence` (no tokenizing) gives what `coverage` and `has_phrase` give on the
    text's tokens: whole tokens only (not inside longer words or identifiers' parts), any case,
    separators of any kind (``_``, punctuation, new lines) between a phrase's tokens."""
    texts = ["def parse_config(path):\n    return Config.parse(path)", "parser configuration", "PARSE\n\nconfig",
             "reparse_configs", "x2 = parse2 + config", "the_sourdough-starter; eat the Sourdough!",
             "Café naïve: straße ÜBER", "config parse", "", "parse_config_parse_config"]
    queries = ["parse_config", "parse config x2", '"config parse" sourdough', "the sourdough starter",
               "Straße über café", "x2", "parse", "config"]
    for query in queries:
        terms = QueryTerms.build(query, total=100, doc_freq={"the": 90, "parse": 5, "config": 20})
        for text in texts:
            toks = tokens(text)
            assert terms.evidence(text) == (terms.coverage(set(toks)), terms.has_phrase(toks)), (query, text)
    assert QueryTerms.build("parse_config", 100, {}).evidence("reparse_configs") == (0.0, False)
    assert QueryTerms.build("parse_config", 100, {}).evidence("x.PARSE__Config") == (1.0, True)


def test_scores_stay_on_one_scale():
    t = scoring.DEFAULT
    q = scoring.QueryEvidence(w_lex=t.w_lex, best_bm25=10.0)
    strong = scoring.Signals(cosine=0.9, bm25=10.0, coverage=1.0, phrase=True)
    none = scoring.Signals(cosine=0.0, bm25=None, coverage=0.0)
    for mode in ("semantic", "lexical", "hybrid"):
        assert 0.0 <= scoring.score(none, mode, t, q) < 0.05 and 0.9 <= scoring.score(strong, mode, t, q) <= 1.0
    partial = scoring.Signals(cosine=0.4, bm25=5.0, coverage=0.5)
    assert scoring.score(partial, "hybrid", t, q) >= scoring.score(partial, "semantic", t, q), "never below semantic"
    assert scoring.file_score([0.5, 0.4, 0.3, 0.9], t) == pytest.approx(0.9 + t.file_share * 0.9)


def test_dev_sets_are_split_deterministically_and_committed():
    items, unanswerable = devsets.load(quick=False)
    assert {i.set for i in items} == set(devsets.LABELLED) and len(unanswerable) >= 30
    assert all(i.split == devsets.split_of(i.set, i.id) for i in items)
    for name in devsets.LABELLED:
        halves = [i.split for i in items if i.set == name]
        assert 0.3 < halves.count("tune") / len(halves) < 0.7, name


def test_multilingual_set_labels_lines_of_its_corpus(tmp_path):
    """Both halves, six languages asked and answered, each label a real entry of the written corpus
    (one a file) in the document language its id names, asked in the query language it names."""
    items = [i for i in devsets.load(quick=True)[0] if i.set == "multilingual"]
    assert len(items) >= 300
    for half in ("tune", "test"):
        assert len([i for i in items if i.split == half]) >= 100, half
    langs = {"en", "de", "fr", "es", "ja", "zh"}
    assert {devsets.languages(i)[0] for i in items} == langs == {devsets.languages(i)[1] for i in items}
    assert len({i.id for i in items}) == len(items) == len({i.source for i in items}), "one query per entry"
    stale = tmp_path / "multilingual" / "en" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an older set\n")
    assert devsets.materialise(items, tmp_path) == items
    assert not stale.exists()
    written = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "multilingual").rglob("*.txt")}
    assert written == set(devsets.multilingual_corpus()) and len(written) > len(items), "with distractors"
    cjk = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
    for i in items:
        query_lang, doc_lang = devsets.languages(i)
        assert i.source.startswith(f"multilingual/{doc_lang}/"), i.id
        lines = (tmp_path / i.source).read_text(encoding="utf-8").split("\n")
        assert i.start_line == i.end_line == 1 and lines[0].strip() and not "".join(lines[1:]).strip(), i.id
        assert bool(cjk.search(lines[0])) == (doc_lang in ("ja", "zh")), i.id
        assert bool(cjk.search(i.query)) == (query_lang in ("ja", "zh")), i.id
        assert lines[0] != i.query, i.id


def test_doc_headings_markdown_and_rst():
    lines = ["Title", "=====", "", "text", "```", "# not a heading", "```", "## Second part", "body"]
    assert [(a, b, t) for a, b, t in devsets.headings(lines)] == [(0, 1, "Title"), (7, 7, "Second part")]
