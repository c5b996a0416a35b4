"""The vector store on a real embedded Chroma: add/delete/existing/query, filters, ef_search."""

from dataclasses import replace

import numpy as np

from semdexd.config import StoreConfig
from semdexd.store.vectors import VectorStore, ancestors, chunk_metadata, nearest
from tests.support import Instance


def unit(rng, n, d=8):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_add_delete_existing_query_and_filters(tmp_path):
    cfg = Instance(tmp_path, []).config()
    store = VectorStore(cfg, "semdex-test")
    rng = np.random.default_rng(0)
    vecs = unit(rng, 6)
    paths = ["/r/a/x.md", "/r/a/y.md", "/r/b/z.py", "/r/b/w.py", "/r/c/v.md", "/r/c/u.md"]
    store.add([f"id{i}" for i in range(6)], vecs, [chunk_metadata(p, p.rsplit(".", 1)[1]) for p in paths])
    assert store.count() == 6 and store.existing(["id1", "nope"]) == {"id1"}
    assert store.query(vecs[2], 1)[0].id == "id2"
    assert abs(store.query(vecs[2], 1)[0].score - 1.0) < 1e-4
    got = store.query(vecs[0], 6, where={"dirs": {"$contains": "/r/b"}})
    assert {n.id for n in got} == {"id2", "id3"}
    assert {n.id for n in store.query(vecs[0], 6, ids=["id4", "id5"])} == {"id4", "id5"}
    exact = nearest(vecs[4], store.vectors(["id3", "id4", "id5"]), 2)
    assert exact[0].id == "id4" and abs(exact[0].score - 1.0) < 1e-5 and len(exact) == 2
    assert exact == sorted(exact, key=lambda n: -n.score)
    store.delete(["id0", "id1", "missing"])
    assert store.all_ids() == {"id2", "id3", "id4", "id5"}
    assert store.count() == 4, "the cached count follows our own writes"
    store.add(["id9"], vecs[:1], [chunk_metadata(paths[0], "md")])
    assert store.count() == 5 == store._col.count()
    assert len(store.query(vecs[0], 10)) == 5
    assert set(store.vectors(["id2"])) == {"id2"}


def test_ancestors():
    assert ancestors("/home/u/notes/a.md") == ["/home", "/home/u", "/home/u/notes"]


def test_changed_ef_search_is_applied_on_open(tmp_path):
    cfg = Instance(tmp_path, []).config()
    VectorStore(cfg, "semdex-ef")
    cfg2 = replace(cfg, store=StoreConfig(hnsw_ef_search=321))
    store = VectorStore(cfg2, "semdex-ef")
    assert store._col.configuration["hnsw"]["ef_search"] == 321
