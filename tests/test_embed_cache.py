"""The persistent embedding cache on its own (no model needed)."""

from __future__ import annotations

import numpy as np

from semdexd.embed.cache import ENTRY_OVERHEAD, EmbedCache
from semdexd.embed.text import cache_key, clean

DIM = 8


def vec(i: int) -> np.ndarray:
    v = np.arange(DIM, dtype=np.float32) + i
    return v / np.linalg.norm(v)


def test_round_trip_counters_and_persistence(tmp_path):
    path = tmp_path / "cache.sqlite3"
    cache = EmbedCache(path, max_mb=1, dim=DIM)
    keys = [cache_key("m", f"text {i}") for i in range(5)]
    cache.put_many(zip(keys, map(vec, range(5))))
    found = cache.get_many(keys + [cache_key("m", "absent")])
    assert set(found) == set(keys) and np.array_equal(found[keys[3]], vec(3))
    assert cache.stats()["hits"] == 5 and cache.stats()["misses"] == 1 and cache.stats()["entries"] == 5
    cache.close()
    reopened = EmbedCache(path, max_mb=1, dim=DIM)
    assert reopened.stats()["entries"] == 5 and len(reopened.get_many(keys)) == 5


def test_bounded_by_size_evicting_least_recently_used(tmp_path):
    max_entries = 20
    cache = EmbedCache(tmp_path / "c.sqlite3", max_mb=max_entries * (DIM * 4 + ENTRY_OVERHEAD) / 2**20, dim=DIM)
    assert cache.max_entries == max_entries
    keys = [cache_key("m", str(i)) for i in range(100)]
    cache.put_many([(keys[0], vec(0))])
    for i in range(1, 100):
        cache.put_many([(keys[i], vec(i))])
        cache.get_many([keys[0]])          # keep the first one hot
        assert cache.stats()["entries"] <= max_entries
    assert keys[0] in cache.get_many([keys[0]])
    assert keys[1] not in cache.get_many([keys[1]])


def test_keys_depend_on_model_and_exact_text():
    assert cache_key("a", "x") != cache_key("b", "x") != cache_key("a", "x ")
    assert cache_key("a", clean("bad \udcff")) == cache_key("a", "bad \ufffd")


def test_unreadable_file_is_moved_aside(tmp_path):
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = EmbedCache(path, max_mb=1, dim=DIM)
    key = cache_key("m", "t")
    cache.put_many([(key, vec(1))])
    assert key in cache.get_many([key])
    assert [p for p in tmp_path.iterdir() if ".broken-" in p.name]


def test_wrong_dimension_is_ignored(tmp_path):
    cache = EmbedCache(tmp_path / "c.sqlite3", max_mb=1, dim=DIM)
    cache.put_many([(cache_key("m", "t"), np.zeros(DIM + 1, np.float32))])
    assert cache.stats()["entries"] == 0


def test_old_layout_is_replaced_and_size_matches_the_bound(tmp_path):
    import os
    import sqlite3

    import numpy as np

    from semdexd.embed.cache import EmbedCache

    path = tmp_path / "c.sqlite3"
    with sqlite3.connect(path) as db:  # the first layout, which spilled rows to overflow pages
        db.execute("CREATE TABLE vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL, used INTEGER NOT NULL) WITHOUT ROWID")
        db.execute("INSERT INTO vectors VALUES (?, ?, 0)", (b"k" * 32, b"\0" * 1536))
    cache = EmbedCache(path, 64, 384)
    assert cache.entries == 0
    rng = np.random.default_rng(0)
    cache.put_many((os.urandom(32), v) for v in rng.standard_normal((4000, 384)).astype(np.float32))
    cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert on_disk <= 1.2 * cache.stats()["mb"] * 2**20 + 65536
