"""Words first, meaning next: a file is findable by its words as soon as it is chunked, its
vectors follow, and what a person is working on gets its vectors before the backlog. Real
service, real worker, real Chroma, real files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from semdexd.app.handlers import Api
from semdexd.app.service import Service
from semdexd.index.backlog import Backlog, Waiting
from semdexd.index.changes import Urgency
from tests.support import Instance, wait_for

FILES = 100
PARAGRAPHS = 6
TOPICS = ["harbour", "orchard", "glacier", "bakery", "railway", "library", "vineyard", "lighthouse"]


def _corpus(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(FILES):
        topic = TOPICS[i % len(TOPICS)]
        paragraphs = [f"Note {i} paragraph {j} about the {topic}: the keeper writes down what the {topic} "
                      f"needs this season, the tools, the weather and the people who came by on day {j}."
                      for j in range(PARAGRAPHS)]
        paragraphs.append(f"Unique marker word zq{i:03d}x for note {i}.")
        (folder / f"note{i:03d}.md").write_text("\n\n".join(paragraphs) + "\n")


def _search(svc: Service, query: str, mode: str) -> dict[str, Any]:
    return Api(svc).handlers()["search"]({"query": query, "mode": mode, "limit": 5})


def _awaiting(svc: Service, path: Path) -> int:
    return len(svc.manifest.awaiting_chunks([str(path)]))


def test_words_are_findable_before_vectors_and_a_live_save_goes_first(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    _corpus(folder)
    inst = Instance(tmp_path / "inst", [folder])
    svc = Service(inst.config())
    svc.start()
    try:
        wait_for(lambda: svc.error or (svc.ready.is_set() and svc.manifest.counts()["indexed"] == FILES),
                 timeout=120, what="every file's words committed")
        assert svc.error is None
        counts = svc.manifest.counts()
        assert counts["chunks_awaiting"] > 0, "the words should be in long before every vector"
        last = folder / f"note{FILES - 1:03d}.md"
        # An exact word of a file whose vectors are not all there is found, lexically and in hybrid.
        target = next(folder / f"note{i:03d}.md" for i in reversed(range(FILES))
                      if _awaiting(svc, folder / f"note{i:03d}.md"))
        word = f"zq{int(target.stem[4:]):03d}x"
        for mode in ("lexical", "hybrid"):
            result = _search(svc, word, mode)
            assert [h["path"] for h in result["hits"]][:1] == [str(target)], (mode, result)
        assert 0.0 <= result["coverage"]["semantic"] < 1.0 and result["coverage"]["awaiting"] > 0
        status = svc.status()
        assert status["words"]["files"] == FILES and status["meaning"]["chunks_awaiting"] > 0
        assert status["meaning"]["files"] < FILES

        # A file saved now gets its vectors before the backlog is done.
        live = folder / "live.md"
        live.write_text("Live edit: the sourdough starter wants flour and water every morning.\n")
        wait_for(lambda: (row := svc.manifest.file(str(live))) is not None and row.chunks and not _awaiting(svc, live),
                 timeout=120, what="the live file's vectors")
        left = svc.manifest.counts()
        assert left["chunks_awaiting"] > 0, "the live save should overtake the backlog"
        assert last.exists()

        # Then everything gets its vectors, and the coverage note goes away.
        wait_for(lambda: svc.state() == "idle", timeout=300, what="the backlog's vectors")
        counts = svc.manifest.counts()
        assert counts["chunks_awaiting"] == 0 and counts["files_awaiting"] == 0
        assert svc.store.all_ids() == svc.manifest.all_chunk_ids()
        done = _search(svc, "what the orchard needs this season", "semantic")
        assert done["hits"] and "coverage" not in done
    finally:
        svc.stop()
        inst.cleanup()


def test_the_backlog_hands_out_what_matters_first() -> None:
    now_ns = time.time_ns()
    day = 86400 * 10**9
    backlog = Backlog()
    backlog.add("/old-small", Waiting(Urgency.BACKLOG, now_ns - 400 * day, 1_000))
    backlog.add("/recent-archive", Waiting(Urgency.BACKLOG, now_ns - day, 50 << 20))
    backlog.add("/recent-note", Waiting(Urgency.BACKLOG, now_ns - day, 2_000))
    backlog.add("/asked", Waiting(Urgency.REQUESTED, now_ns - 900 * day, 5 << 20))
    backlog.add("/saved", Waiting(Urgency.LIVE, now_ns, 10 << 20))
    backlog.add("/later", Waiting(Urgency.LIVE, now_ns, 1), delay=60)   # held back (a retry)
    order = [path for path, _ in backlog.take(10, timeout=1)]
    assert order == ["/saved", "/asked", "/recent-note", "/recent-archive", "/old-small"]
    backlog.add("/saved", Waiting(Urgency.BACKLOG, now_ns, 1))   # edited again while in flight
    assert backlog.take(10, timeout=0.05) == []                    # not handed out twice at once
    backlog.done(["/saved"])
    assert [p for p, w in backlog.take(10, timeout=1)] == ["/saved"]
    assert backlog.busy()


def test_files_given_back_to_the_backlog_keep_their_place() -> None:
    backlog = Backlog()
    now = time.time_ns()
    backlog.add("/note.md", Waiting(Urgency.LIVE, now, 100))
    backlog.add("/old.md", Waiting(Urgency.BACKLOG, now - 400 * 86400 * 10**9, 100))
    taken = backlog.take(1, timeout=1)
    assert [p for p, _ in taken] == ["/note.md"]
    backlog.give_back(taken)
    assert [p for p, _ in backlog.take(2, timeout=1)] == ["/note.md", "/old.md"]


def test_a_file_added_again_or_discarded_is_handed_out_once_or_never() -> None:
    backlog = Backlog()
    now = time.time_ns()
    for _ in range(100):   # saved again and again: one entry each time, superseded by the next
        backlog.add("/note.md", Waiting(Urgency.BACKLOG, now, 100))
    backlog.add("/gone.md", Waiting(Urgency.LIVE, now, 100))
    backlog.discard("/gone.md")
    assert backlog.take(10, timeout=1) == [("/note.md", Waiting(Urgency.BACKLOG, now, 100))]
    assert backlog.take(10, timeout=0.05) == [] and backlog.files() == 1   # in flight
    backlog.done(["/note.md"])
    assert not backlog.busy()
