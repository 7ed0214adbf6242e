"""WatchThread and WatchStep (SPEC.md §2.4): the snapshot first, every event
as it happens, the end after the terminal status; a watch on a paused
thread that stays open and idle until the thread is resumed; 64 watches and
64 streams served at the same time; and an emulator that stops cleanly
with watches open."""

import threading

import pytest

from harness import (StreamClosed, chunks_bytes, parse_stream, raw_stream, running)

pytestmark = pytest.mark.timeout(60)

EVENT_TYPES = {"THREAD_EVENT_TYPE_" + s for s in
               ("SNAPSHOT", "STATUS", "STEP_STARTED", "STEP_FINISHED", "YIELD")}


def read_events(stream, timeout=None):
    events = []
    while True:
        m = stream.next_message(timeout=timeout)
        if m is None:
            return events
        events.append(m)


def check_event_shape(ev):
    assert ev["type"] in EVENT_TYPES, ev
    assert ev["atMs"].isdigit()
    if ev["type"] in ("THREAD_EVENT_TYPE_STEP_STARTED", "THREAD_EVENT_TYPE_STEP_FINISHED"):
        assert ev["step"]["stepPath"]
    else:
        assert "step" not in ev
    if ev["type"] == "THREAD_EVENT_TYPE_YIELD":
        assert isinstance(ev["yieldedJson"], str)
    else:
        assert "yieldedJson" not in ev


def start_watch(emu, tid, path=None):
    url = f"/threads/{tid}/watch" if path is None else f"/threads/{tid}/steps/{path}/watch"
    s = raw_stream(emu, url)
    assert s.status == 200, s.read_some()
    assert s.chunked
    return s


# ---- WatchThread ----

def test_watch_thread_follows_a_run_from_snapshot_to_the_terminal_status(emulator):
    t = emulator.post("/threads", {"scriptName": "fanout"})
    tid = t["threadId"]
    with start_watch(emulator, tid) as s:
        events = read_events(s)
        assert s.complete  # the server ended the body
    for ev in events:
        check_event_shape(ev)
        assert ev["thread"]["threadId"] == tid
    snap = events[0]
    assert snap["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert all(ev["type"] != "THREAD_EVENT_TYPE_SNAPSHOT" for ev in events[1:])
    last = events[-1]
    assert last["type"] == "THREAD_EVENT_TYPE_STATUS"
    assert last["thread"]["status"] == "THREAD_STATUS_COMPLETED"
    assert "finishedAtMs" in last["thread"]
    at = [int(ev["atMs"]) for ev in events[1:]]
    assert at == sorted(at)
    # every step from the one current at the snapshot on starts and finishes,
    # in plan order
    paths = [s["stepPath"] for s in emulator.get(f"/threads/{tid}/result")["steps"]]
    current = snap["thread"].get("currentStepPath")
    from_index = paths.index(current) if current else 0
    started = [ev["step"]["stepPath"] for ev in events
               if ev["type"] == "THREAD_EVENT_TYPE_STEP_STARTED"]
    finished = [ev["step"]["stepPath"] for ev in events
                if ev["type"] == "THREAD_EVENT_TYPE_STEP_FINISHED"]
    assert set(paths[from_index + 1:]) <= set(started)
    assert started == sorted(started, key=paths.index)
    assert set(paths[from_index:]) <= set(finished)
    assert len(finished) == len(set(finished))
    for ev in events:
        if ev["type"] == "THREAD_EVENT_TYPE_STEP_FINISHED":
            assert ev["step"]["status"] == "STEP_STATUS_COMPLETED"
    # the yield step yields three values, as events
    yields = [ev["yieldedJson"] for ev in events if ev["type"] == "THREAD_EVENT_TYPE_YIELD"]
    r = emulator.get(f"/threads/{tid}/result")
    assert yields == r["yieldedValues"]
    # the thread in each event is the thread as of that event
    statuses = [ev["thread"]["status"] for ev in events[1:]]
    assert statuses[-1] == "THREAD_STATUS_COMPLETED"
    assert all(st == "THREAD_STATUS_RUNNING" for st in statuses[:-1]
               if st != "THREAD_STATUS_PENDING")
    for ev in events:
        if ev["type"] == "THREAD_EVENT_TYPE_STEP_STARTED" and \
                "." not in ev["step"]["stepPath"]:
            assert ev["thread"]["currentStepPath"] == ev["step"]["stepPath"]


def test_watch_thread_of_a_finished_thread_sends_the_snapshot_and_closes(emulator):
    tid = emulator.seed("echo", count=1)[0]
    with start_watch(emulator, tid) as s:
        events = read_events(s)
    assert len(events) == 1
    assert events[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert events[0]["thread"] == emulator.get(f"/threads/{tid}")


@pytest.mark.timeout(60)
def test_watch_of_a_paused_thread_stays_open_and_idle_until_resumed(emulator):
    t = emulator.post("/threads", {"scriptName": "approval", "inputJson": '{"t":1}'})
    tid = t["threadId"]
    with start_watch(emulator, tid) as s:
        events = []
        while True:
            ev = s.next_message()
            assert ev is not None, "the watch ended while the thread was paused"
            events.append(ev)
            if ev["thread"]["status"] == "THREAD_STATUS_PAUSED":
                break
        assert events[-1]["type"] in ("THREAD_EVENT_TYPE_STATUS",
                                      "THREAD_EVENT_TYPE_SNAPSHOT")
        # paused: nothing comes, and the connection stays open
        assert s.idle(1.0)
        assert not s.eof
        assert s.idle(0.5)
        resumed = emulator.post(f"/threads/{tid}/resume",
                                {"stepInputOverrideJson": '{"value":"approve"}'})
        assert resumed["status"] == "THREAD_STATUS_RUNNING"
        rest = read_events(s, timeout=30)
        assert s.complete
    kinds = [(ev["type"], ev.get("step", {}).get("stepPath"), ev["thread"]["status"])
             for ev in rest]
    assert kinds == [
        ("THREAD_EVENT_TYPE_STATUS", None, "THREAD_STATUS_RUNNING"),
        ("THREAD_EVENT_TYPE_STEP_FINISHED", "2", "THREAD_STATUS_RUNNING"),
        ("THREAD_EVENT_TYPE_STEP_STARTED", "3", "THREAD_STATUS_RUNNING"),
        ("THREAD_EVENT_TYPE_STEP_FINISHED", "3", "THREAD_STATUS_RUNNING"),
        ("THREAD_EVENT_TYPE_STATUS", None, "THREAD_STATUS_COMPLETED"),
    ]


def test_watch_sees_a_flaky_step_fail_pause_and_succeed_on_resume(emulator):
    tid = emulator.post("/threads", {"scriptName": "flaky"})["threadId"]
    with start_watch(emulator, tid) as s:
        while True:
            ev = s.next_message()
            assert ev is not None
            if ev["thread"]["status"] == "THREAD_STATUS_PAUSED":
                break
        if ev["type"] == "THREAD_EVENT_TYPE_STATUS":
            assert "502" in ev["thread"]["error"]
        assert s.idle(0.5)
        emulator.post(f"/threads/{tid}/resume", {})
        rest = read_events(s, timeout=30)
    kinds = [(ev["type"], ev.get("step", {}).get("stepPath")) for ev in rest]
    assert kinds[:3] == [("THREAD_EVENT_TYPE_STATUS", None),
                         ("THREAD_EVENT_TYPE_STEP_STARTED", "2"),
                         ("THREAD_EVENT_TYPE_STEP_FINISHED", "2")]
    assert rest[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"
    assert "error" not in rest[-1]["thread"]


def test_watch_ends_when_the_thread_is_cancelled(emulator):
    tid = emulator.post("/threads", {"scriptName": "nightly"})["threadId"]
    emulator.wait_status(tid, {"running"})
    with start_watch(emulator, tid) as s:
        snap = s.next_message()
        assert snap["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
        assert s.idle(0.3)
        emulator.post(f"/threads/{tid}/cancel", {})
        rest = read_events(s, timeout=30)
    assert rest[-1]["type"] == "THREAD_EVENT_TYPE_STATUS"
    assert rest[-1]["thread"]["status"] == "THREAD_STATUS_CANCELLED"


def test_watch_ends_when_the_thread_fails(emulator):
    tid = emulator.post("/threads", {"scriptName": "strict"})["threadId"]
    with start_watch(emulator, tid) as s:
        events = read_events(s, timeout=30)
    assert events[-1]["thread"]["status"] == "THREAD_STATUS_FAILED"
    assert "field 'id' is required" in events[-1]["thread"]["error"]
    failed = [ev for ev in events if ev["type"] == "THREAD_EVENT_TYPE_STEP_FINISHED"
              and ev["step"]["stepPath"] == "2"]
    assert failed and failed[0]["step"]["status"] == "STEP_STATUS_FAILED"


# ---- WatchStep ----

def test_watch_step_sends_that_steps_events_and_closes_when_it_settles(emulator):
    tid = emulator.post("/threads", {"scriptName": "fanout"})["threadId"]
    # step 4 (publish) starts after ~0.6 s of run
    with start_watch(emulator, tid, "4") as s:
        events = read_events(s, timeout=30)
        assert s.complete
    assert [ev["type"] for ev in events] == [
        "THREAD_EVENT_TYPE_SNAPSHOT", "THREAD_EVENT_TYPE_STEP_STARTED",
        "THREAD_EVENT_TYPE_STEP_FINISHED"]
    for ev in events:
        assert set(ev) == {"type", "atMs", "step"}
        assert ev["step"]["stepPath"] == "4" and ev["step"]["name"] == "publish"
    assert events[0]["step"]["status"] == "STEP_STATUS_PENDING"
    assert events[2]["step"]["status"] == "STEP_STATUS_COMPLETED"
    assert int(events[1]["atMs"]) <= int(events[2]["atMs"])


def test_watch_step_of_a_nested_step(emulator):
    tid = emulator.post("/threads", {"scriptName": "fanout"})["threadId"]
    with start_watch(emulator, tid, "2.11.1") as s:
        events = read_events(s, timeout=30)
    assert events[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert events[-1]["type"] == "THREAD_EVENT_TYPE_STEP_FINISHED"
    assert all(ev["step"]["stepPath"] == "2.11.1" for ev in events)
    assert events[-1]["step"]["status"] == "STEP_STATUS_COMPLETED"


def test_watch_step_of_a_paused_ask_step_ends_when_it_is_answered(emulator):
    tid = emulator.post("/threads", {"scriptName": "approval"})["threadId"]
    emulator.wait_status(tid, {"paused"})
    with start_watch(emulator, tid, "2") as s:
        snap = s.next_message()
        assert snap["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
        assert snap["step"]["status"] == "STEP_STATUS_PAUSED"
        assert s.idle(1.0)
        emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
        rest = read_events(s, timeout=30)
    assert [ev["type"] for ev in rest] == ["THREAD_EVENT_TYPE_STEP_FINISHED"]
    assert rest[0]["step"]["status"] == "STEP_STATUS_COMPLETED"


def test_watch_step_of_a_settled_step_sends_the_snapshot_and_closes(emulator):
    tid = emulator.seed("fanout", count=1)[0]
    with start_watch(emulator, tid, "2.3.0") as s:
        events = read_events(s)
    assert len(events) == 1
    assert events[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert events[0]["step"]["status"] == "STEP_STATUS_COMPLETED"


def test_watch_step_ends_when_the_thread_ends_first(emulator):
    tid = emulator.post("/threads", {"scriptName": "nightly"})["threadId"]
    emulator.wait_status(tid, {"running"})
    with start_watch(emulator, tid, "3") as s:
        snap = s.next_message()
        assert snap["step"]["status"] == "STEP_STATUS_PENDING"
        emulator.post(f"/threads/{tid}/cancel", {})
        rest = read_events(s, timeout=30)
        assert s.complete
    assert all(ev["type"] != "THREAD_EVENT_TYPE_SNAPSHOT" for ev in rest)


def test_watch_step_of_a_step_of_a_failed_thread_closes(emulator):
    tid = emulator.seed("strict", count=1, status="failed")[0]
    with start_watch(emulator, tid, "2") as s:
        events = read_events(s, timeout=30)
        assert s.complete
    assert events[0]["step"]["status"] == "STEP_STATUS_FAILED"


# ---- many at once ----

@pytest.mark.timeout(120)
def test_64_watches_on_a_paused_thread_are_served_at_once_and_all_complete(emulator):
    tid = emulator.post("/threads", {"scriptName": "approval"})["threadId"]
    emulator.wait_status(tid, {"paused"})
    n = 64
    streams = []
    try:
        for _ in range(n):
            s = start_watch(emulator, tid)
            streams.append(s)
            assert s.next_message()["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
        # all 64 are open at the same time, each with its own connection
        assert all(not s.eof and not s.complete for s in streams)
        results = [None] * n
        barrier = threading.Barrier(n + 1, timeout=60)

        def reader(i):
            barrier.wait()
            try:
                results[i] = read_events(streams[i], timeout=60)
            except Exception as e:  # reported below
                results[i] = e

        readers = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
        for r in readers:
            r.start()
        barrier.wait()
        emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
        for r in readers:
            r.join(90)
        assert not any(r.is_alive() for r in readers)
        for i, events in enumerate(results):
            assert isinstance(events, list), f"watch {i}: {events!r}"
            assert events[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED", i
            assert streams[i].complete
        assert all([ev["type"] for ev in r] == [ev["type"] for ev in results[0]]
                   for r in results)
    finally:
        for s in streams:
            s.close()


@pytest.mark.timeout(120)
def test_64_result_streams_are_served_in_parallel(emulator):
    ids = emulator.seed("echo", count=8, outputBytes=(1 << 20) + 7)
    raws = {tid: emulator.raw_output(tid) for tid in ids}
    n = 64
    streams = [raw_stream(emulator, f"/threads/{ids[i % 8]}/result/stream",
                          params={"maxChunkBytes": 65536}) for i in range(n)]
    try:
        # every stream has begun before any is read to its end
        for s in streams:
            assert s.status == 200
            assert "meta" in s.next_message()
        results = [None] * n

        def reader(i):
            try:
                results[i] = streams[i].read_all()
            except Exception as e:
                results[i] = e

        readers = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
        for r in readers:
            r.start()
        for r in readers:
            r.join(90)
        for i, body in enumerate(results):
            assert isinstance(body, bytes), f"stream {i}: {body!r}"
            messages, error = parse_stream(body)
            assert error is None
            assert chunks_bytes(messages) == raws[ids[i % 8]]
    finally:
        for s in streams:
            s.close()


@pytest.mark.timeout(60)
def test_a_watcher_that_hangs_up_frees_its_connection(emulator):
    tid = emulator.post("/threads", {"scriptName": "approval"})["threadId"]
    emulator.wait_status(tid, {"paused"})
    for _ in range(3):
        with start_watch(emulator, tid) as s:
            assert s.next_message()["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    # the emulator still serves, and still ends the other watches
    with start_watch(emulator, tid) as s:
        s.next_message()
        emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
        assert read_events(s, timeout=30)[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"


@pytest.mark.timeout(60)
def test_the_emulator_stops_cleanly_with_watches_open():
    with running() as emu:
        tid = emu.post("/threads", {"scriptName": "approval"})["threadId"]
        emu.wait_status(tid, {"paused"})
        streams = [start_watch(emu, tid) for _ in range(4)]
        for s in streams:
            s.next_message()
        steps = start_watch(emu, tid, "2")
        steps.next_message()
        streams.append(steps)
    # stop() checked the exit; the watches ended with the emulator
    for s in streams:
        try:
            s.read_all()
        except (StreamClosed, OSError):
            pass
        assert s.eof or s.complete
        s.close()


@pytest.mark.timeout(60)
def test_a_slow_watcher_sees_each_step_event_as_it_was():
    """Events wait for a reader that is slow (here: a stalled stream); when
    they are read they still say what happened then: a step event carries
    the step as of the event, like the thread, not as it is now."""
    with running() as emu:
        emu.faults(stallAfterBytes=1, stallMs=2500, match="/watch")
        tid = emu.post("/threads", {"scriptName": "fanout"})["threadId"]
        with start_watch(emu, tid) as s:
            events = read_events(s, timeout=30)
        emu.clear_faults()
        assert emu.get(f"/threads/{tid}")["status"] == "THREAD_STATUS_COMPLETED"
    started = [ev for ev in events if ev["type"] == "THREAD_EVENT_TYPE_STEP_STARTED"]
    assert started
    for ev in started:
        assert ev["step"]["status"] == "STEP_STATUS_RUNNING", ev
        assert "finishedAtMs" not in ev["step"], ev
    for ev in events[1:]:
        if ev["type"] != "THREAD_EVENT_TYPE_STATUS" or \
                ev["thread"]["status"] != "THREAD_STATUS_COMPLETED":
            assert "finishedAtMs" not in ev["thread"], ev


@pytest.mark.timeout(60)
def test_a_slow_step_watcher_sees_the_step_start_as_running():
    with running() as emu:
        emu.faults(stallAfterBytes=1, stallMs=2500, match="/watch")
        tid = emu.post("/threads", {"scriptName": "fanout"})["threadId"]
        # step 4 starts ~0.6 s into the run and lasts 40 ms
        with start_watch(emu, tid, "4") as s:
            events = read_events(s, timeout=30)
        emu.clear_faults()
    assert [ev["type"] for ev in events] == [
        "THREAD_EVENT_TYPE_SNAPSHOT", "THREAD_EVENT_TYPE_STEP_STARTED",
        "THREAD_EVENT_TYPE_STEP_FINISHED"]
    assert [ev["step"]["status"] for ev in events] == [
        "STEP_STATUS_PENDING", "STEP_STATUS_RUNNING", "STEP_STATUS_COMPLETED"]


@pytest.mark.timeout(60)
def test_a_slow_watcher_sees_the_error_a_thread_paused_with():
    """The thread in an event is the thread as of that event (SPEC §2.4),
    its error too, even when the event is read after the thread moved on."""
    with running() as emu:
        emu.faults(stallAfterBytes=1, stallMs=3000, match="/watch")
        tid = emu.post("/threads", {"scriptName": "flaky"})["threadId"]
        with start_watch(emu, tid) as s:
            emu.wait_status(tid, {"paused"})
            emu.post(f"/threads/{tid}/resume", {})
            emu.wait_status(tid, {"completed"})
            events = read_events(s, timeout=30)
        emu.clear_faults()
    paused = [ev for ev in events if ev["type"] == "THREAD_EVENT_TYPE_STATUS"
              and ev["thread"]["status"] == "THREAD_STATUS_PAUSED"]
    assert len(paused) == 1
    assert "502 Bad Gateway" in paused[0]["thread"].get("error", ""), paused[0]
    failed = [ev for ev in events if ev["type"] == "THREAD_EVENT_TYPE_STEP_FINISHED"
              and ev["step"]["stepPath"] == "2"]
    assert [ev["step"]["status"] for ev in failed] == ["STEP_STATUS_FAILED",
                                                       "STEP_STATUS_COMPLETED"]
    assert "502" in failed[0]["step"].get("error", "")
    assert events[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"
