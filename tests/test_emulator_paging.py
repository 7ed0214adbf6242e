"""ListThreads paging at scale (SPEC.md §2.2): page tokens that stay valid
while threads are created, the 1000 clamp on pageSize, and 100000 threads
paged through quickly."""

import threading
import time

import pytest

from harness import list_all, running, status_word, thread_ids


@pytest.mark.timeout(60)
def test_list_threads_clamps_page_size_5000_to_1000():
    with running(seed=None) as emu:
        ids = emu.seed("echo", count=1500)
        first = emu.get("/threads", pageSize=5000)
        assert len(first["threads"]) == 1000
        assert first["nextPageToken"]
        second = emu.get("/threads", pageSize=5000, pageToken=first["nextPageToken"])
        assert len(second["threads"]) == 500
        assert "nextPageToken" not in second
        assert thread_ids(first["threads"] + second["threads"]) == ids[::-1]
        # a huge number is clamped too, not an error
        assert len(emu.get("/threads", pageSize=10 ** 12)["threads"]) == 1000


@pytest.mark.timeout(60)
def test_list_threads_page_size_zero_means_the_default():
    with running(seed=None) as emu:
        emu.seed("echo", count=120)
        assert len(emu.get("/threads", pageSize=0)["threads"]) == 50
        assert len(emu.get("/threads", pageSize=1)["threads"]) == 1


class Creator(threading.Thread):
    """Creates threads in the background, live (CreateThread) and finished
    (seed, of the status the pager filters on), until stopped."""

    def __init__(self, emu, seed_status="failed"):
        super().__init__(daemon=True)
        self.emu = emu
        self.seed_status = seed_status
        self.created = []
        self.count = 0
        self.cond = threading.Condition()
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop_flag.is_set():
                if self.count % 2 == 0:
                    new = [self.emu.post("/threads", {"scriptName": "strict"})["threadId"]]
                else:
                    new = self.emu.seed("strict", count=3, status=self.seed_status)
                with self.cond:
                    self.created += new
                    self.count += 1
                    self.cond.notify_all()
        except Exception as e:  # reported by the test
            self.error = e
            with self.cond:
                self.cond.notify_all()

    def wait_for_more(self, seen):
        """Blocks until the creator has created after `seen` rounds."""
        with self.cond:
            ok = self.cond.wait_for(lambda: self.count > seen or self.error, timeout=30)
            assert ok and self.error is None, self.error
            return self.count

    def stop(self):
        self.stop_flag.set()
        self.join(30)
        assert not self.is_alive()
        assert self.error is None, self.error


def page_while_creating(emu, creator, **params):
    """Pages through ListThreads, letting the creator make threads before
    each page; returns the ids in page order."""
    seen = creator.wait_for_more(0)
    ids, token, pages = [], None, 0
    while True:
        q = dict(params)
        if token:
            q["pageToken"] = token
        page = emu.get("/threads", **q)
        pages += 1
        ids += thread_ids(page["threads"])
        token = page.get("nextPageToken")
        if not token:
            return ids, pages
        seen = creator.wait_for_more(seen)


@pytest.mark.timeout(120)
def test_list_threads_never_skips_or_repeats_while_threads_are_created():
    with running(seed=None) as emu:
        existing = []
        for status in ("completed", "failed", "cancelled", "failed"):
            existing += emu.seed("strict" if status == "failed" else "echo", count=150,
                                 status=status)
        existing = existing[::-1]  # newest first
        creator = Creator(emu)
        creator.start()
        try:
            ids, pages = page_while_creating(emu, creator, pageSize=13)
        finally:
            creator.stop()
        assert pages >= len(existing) // 13
        assert len(ids) == len(set(ids)), "a thread was listed twice"
        new = set(creator.created)
        old_part = [i for i in ids if i not in new]
        assert old_part == existing, "a thread that existed was skipped or moved"
        # new threads may only show up ahead of every older one
        n_new = len(ids) - len(old_part)
        assert set(ids[:n_new]) <= new
        assert ids[n_new:] == existing


@pytest.mark.timeout(120)
def test_filtered_paging_never_skips_or_repeats_while_matching_threads_are_created():
    with running(seed=None) as emu:
        existing = []
        for k in range(6):
            existing += emu.seed("strict", count=40, status="failed")
            emu.seed("echo", count=25, status="completed")
            emu.seed("strict", count=10, status="cancelled")
        existing = existing[::-1]
        creator = Creator(emu, seed_status="failed")
        creator.start()
        try:
            ids, pages = page_while_creating(emu, creator, pageSize=17,
                                             statusFilter="FAILED",
                                             scriptNameFilter="strict")
        finally:
            creator.stop()
        assert pages >= len(existing) // 17
        assert len(ids) == len(set(ids))
        new = set(creator.created)
        assert [i for i in ids if i not in new] == existing
        n_new = len(ids) - len(existing)
        assert ids[n_new:] == existing
        for tid in ids[:n_new]:
            t = emu.get(f"/threads/{tid}")
            assert t["scriptName"] == "strict"
        assert all(status_word(emu.get(f"/threads/{tid}")["status"]) == "failed"
                   for tid in ids[:n_new])


@pytest.mark.timeout(180)
def test_100000_seeded_threads_page_through_quickly():
    with running(seed=None) as emu:
        t0 = time.monotonic()
        ids = emu.seed("echo", count=50000) + emu.seed("strict", count=50000, status="failed")
        seeded = time.monotonic() - t0
        assert len(ids) == 100000 == len(set(ids))
        t0 = time.monotonic()
        threads, pages = list_all(emu, page_size=1000)
        paged = time.monotonic() - t0
        assert pages == 100
        assert thread_ids(threads) == ids[::-1]
        # generous bounds: a regression to quadratic paging would take minutes
        assert seeded < 60, f"seeding 100000 threads took {seeded:.1f} s"
        assert paged < 90, f"paging 100000 threads took {paged:.1f} s"
        failed, pages = list_all(emu, page_size=1000, statusFilter="failed")
        assert pages == 50 and thread_ids(failed) == ids[50000:][::-1]
        completed, pages = list_all(emu, page_size=1000, statusFilter="completed",
                                    scriptNameFilter="echo")
        assert pages == 50 and thread_ids(completed) == ids[:50000][::-1]
