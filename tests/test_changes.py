"""The change queue: coalescing, debounce, no concurrent jobs for one path."""

import threading

from semdexd.index.changes import Change, ChangeQueue, Urgency


def test_burst_of_touches_becomes_one_job():
    q = ChangeQueue()
    for _ in range(20):
        q.touch("/a", delay=0.05)
    assert q.take(10, timeout=5) == [Change("/a")]
    assert q.take(10, timeout=0.1) == []


def test_not_handed_out_before_quiet_period():
    q = ChangeQueue()
    q.touch("/a", delay=30)
    assert q.take(10, timeout=0.05) == []
    assert q.pending() == 1


def test_busy_path_waits_for_done():
    q = ChangeQueue()
    q.touch("/a")
    assert q.take(10, timeout=1) == [Change("/a")]
    q.touch("/a")
    assert q.take(10, timeout=0.05) == []  # still in flight
    q.done(["/a"])
    assert q.take(10, timeout=1) == [Change("/a")]


def test_force_is_sticky_until_taken():
    q = ChangeQueue()
    q.touch("/a", force=True)
    q.touch("/a")
    assert q.take(1, timeout=1) == [Change("/a", force=True)]


def test_wait_idle():
    q = ChangeQueue()
    q.touch("/a")
    items = q.take(1, timeout=1)
    t = threading.Timer(0.05, lambda: q.done([c.path for c in items]))
    t.start()
    assert q.wait_idle(timeout=5)
    t.join()


def test_the_most_urgent_due_paths_go_first():
    q = ChangeQueue()
    for i in range(5):
        q.touch(f"/scan/{i}", urgency=Urgency.BACKLOG)
    q.touch("/asked", urgency=Urgency.REQUESTED)
    q.touch("/saved", urgency=Urgency.LIVE)
    q.touch("/scan/3", urgency=Urgency.LIVE)   # saved again: keeps the most urgent reason
    taken = q.take(3, timeout=1)
    assert [c.path for c in taken] == ["/saved", "/scan/3", "/asked"]
    assert [c.urgency for c in taken] == [Urgency.LIVE, Urgency.LIVE, Urgency.REQUESTED]


def test_changes_given_back_are_taken_again_as_they_were():
    """A pause that comes while `take` waits: the loop gives the paths back untouched."""
    q = ChangeQueue()
    q.touch("/a", force=True, urgency=Urgency.LIVE)
    q.touch("/b")
    taken = q.take(10, timeout=1)
    assert {c.path for c in taken} == {"/a", "/b"} and q.pending() == 0
    q.give_back(taken)
    assert q.pending() == 2 and q.in_flight() == 0
    assert q.take(10, timeout=1) == [Change("/a", True, Urgency.LIVE), Change("/b")]
