"""Search: semantic (vectors in the store) and lexical (FTS5 in the manifest), on one 0..1 score.

Modules: `request` (the request and its filter), `globs` (gitignore-style globs), `terms` (query
words, FTS5 queries, lexical evidence), `scoring` (signals -> score, fusion, file rank),
`snippets` (merged hits and their lines), `searcher` (the pipeline).
"""

from semdexd.search.request import MODES, SearchRequest, request_filter
from semdexd.search.scoring import Tuning, for_model
from semdexd.search.searcher import Searcher, split_weak
from semdexd.search.terms import fts_queries, phrase_query, words_query

__all__ = ["MODES", "SearchRequest", "Searcher", "Tuning", "for_model", "fts_queries", "phrase_query", "split_weak",
           "request_filter", "words_query"]
