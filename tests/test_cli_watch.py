"""`thread watch` and `thread run` following a thread (scriptum(1)): piped
table output one line per event, the report of a pause with the exact
resume line (which works when pasted), NDJSON events with -o json, YAML
documents with -o yaml, exit 0/1 by the terminal status, polling when no
watch stream can be had, cancel of a running thread seen by its watcher,
and SIGINT/SIGTERM exits."""

import json
import re
import shlex
import signal
import time

import pytest
import yaml

from harness import (CLIProcess, get_canonical, raw_stream, scriptum, wait_for_status,
                     wait_until)

pytestmark = pytest.mark.timeout(90)

EVENT_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)  (\S.*)$")
APPROVE = '{"value":"approve"}'
# an extra line of the pause report the design does not show, tolerated: the answer's type
EXPECTS = re.compile(r"expects: \S+")


def paused_approval(emu, title="Launch"):
    tid = emu.post("/threads", {"scriptName": "approval",
                                "inputJson": json.dumps({"title": title})})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    return tid


def pause_block(tid):
    return [f"thread {tid} is paused at step 2 (review): Publish this draft?",
            "options: approve, reject",
            f"continue with: scriptum thread resume {tid} --input '{APPROVE}'"]


def resume(emu, tid, answer='"approve"'):
    emu.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": answer})


def event_texts(lines):
    out = []
    for line in lines:
        m = EVENT_LINE.match(line)
        if m:
            assert int(m.group(1)) < 24 and int(m.group(2)) < 60 and int(m.group(3)) < 60
            out.append(m.group(4))
    return out


# ---- table, piped ----

@pytest.mark.timeout(60)
def test_watch_piped_reports_the_pause_with_the_exact_resume_line(emu):
    tid = paused_approval(emu)
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        line = w.wait_for_line(lambda l: "continue with:" in l, timeout=20,
                               what="the resume line")
        # reported while the thread is still paused
        assert get_canonical(emu, f"/threads/{tid}")["status"] == "THREAD_STATUS_PAUSED"
        assert line.strip() == pause_block(tid)[2]
        stripped = [l.strip() for l in w.lines() if not EXPECTS.fullmatch(l.strip())]
        i = stripped.index(pause_block(tid)[0])
        assert stripped[i:i + 3] == pause_block(tid)
    finally:
        resume(emu, tid)
        res = w.finish(30)
    assert res.rc == 0, res.err


@pytest.mark.timeout(60)
def test_the_printed_resume_line_works_when_pasted(emu):
    tid = paused_approval(emu, "Pasted")
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        line = w.wait_for_line(lambda l: "continue with:" in l, timeout=20,
                               what="the resume line")
        argv = shlex.split(line.strip()[len("continue with: "):])
        assert argv[:3] == ["scriptum", "thread", "resume"]
        res = scriptum(emu, *argv[1:])
        assert res.rc == 0, res.err
        done = w.finish(30)
    finally:
        w.kill()
    assert done.rc == 0, done.err
    assert wait_for_status(emu, tid, {"completed"})["status"] == "THREAD_STATUS_COMPLETED"
    d = get_canonical(emu, f"/threads/{tid}/result", stepPath="2")["stepDetails"][0]
    assert json.loads(d["outputJson"]) == {"value": "approve"}
    assert emu.raw_output(tid) == b'{"title": "Pasted"}'


@pytest.mark.timeout(60)
def test_watch_piped_prints_one_line_per_event_and_exits_0_when_completed(emu):
    tid = paused_approval(emu)
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        w.wait_for_line(lambda l: "continue with:" in l, timeout=20, what="the pause report")
        resume(emu, tid)
        res = w.finish(30)
    finally:
        w.kill()
    assert res.rc == 0, res.err
    lines = res.out.decode().splitlines()
    events = event_texts(lines)
    expected = [r"snapshot  paused, step 2 of 3: review",
                r"status  running",
                r"step 2 completed  review  \S+",
                r"step 3 started  publish \(emit\)",
                r"step 3 completed  publish  \S+",
                r"status  completed"]
    assert len(events) == len(expected), lines
    for text, pattern in zip(events, expected):
        assert re.fullmatch(pattern, text), (text, pattern)
    others = [l.strip() for l in lines
              if not EVENT_LINE.match(l) and not EXPECTS.fullmatch(l.strip())]
    final = re.compile(rf"thread {tid} completed in \S+")
    if others and final.fullmatch(others[-1]):
        others.pop()
    else:  # the closing line may go to stderr
        assert re.search(rf"^{final.pattern}$", res.err, re.M), (lines, res.err)
    # nothing else on stdout than the events, the pause report and the closing line
    assert others == pause_block(tid), lines
    # the pause is reported after the snapshot, before the thread goes on
    i = [l.strip() for l in lines].index(pause_block(tid)[0])
    assert EVENT_LINE.match(lines[0]) and i > 0
    assert all(not EVENT_LINE.match(l) or "snapshot" in l for l in lines[:i])


@pytest.mark.timeout(60)
def test_watch_of_a_failing_thread_exits_1_with_the_error(emu):
    tid = emu.post("/threads", {"scriptName": "strict"})["threadId"]
    res = scriptum(emu, "thread", "watch", tid, timeout=40)
    assert res.rc == 1, res.err
    text = res.out.decode() + res.err
    m = re.search(rf"^thread {tid} failed after \S+: (.*)$", text, re.M)
    assert m, text
    assert "field 'id' is required" in m.group(1)
    lines = [l for l in res.out.decode().splitlines()
             if not re.fullmatch(rf"thread {tid} failed after .*", l)]
    events = event_texts(lines)
    assert len(events) == len(lines), lines  # one line per event, nothing else
    assert events[0].startswith("snapshot  ")
    if len(events) > 1:  # the watch began before the end
        assert events[-1] == "status  failed"
    else:
        assert events[0].startswith("snapshot  failed")


def test_watch_of_a_finished_thread_prints_the_snapshot_and_exits(emu):
    tid = emu.seed("echo")[0]
    res = scriptum(emu, "thread", "watch", tid, timeout=30)
    assert res.rc == 0, res.err
    events = event_texts(res.out.decode().splitlines())
    assert len(events) == 1 and events[0].startswith("snapshot  completed"), events


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_watch_of_a_thread_that_did_not_complete_exits_1(emu, status):
    tid = emu.seed("strict" if status == "failed" else "echo", status=status)[0]
    res = scriptum(emu, "thread", "watch", tid, timeout=30)
    assert res.rc == 1, res.err
    text = res.out.decode() + res.err
    word = {"failed": "failed", "cancelled": "cancelled"}[status]
    assert re.search(rf"^thread {tid} {word} after ", text, re.M), text


def test_watch_shows_yields(emu):
    res = scriptum(emu, "thread", "run", "fanout", timeout=60)
    assert res.rc == 0, res.err
    events = event_texts(res.out.decode().splitlines())
    yields = [e for e in events if e.startswith("yield  ")]
    assert [json.loads(e[len("yield  "):]) for e in yields] == \
        [{"seq": i, "value": f"item-{i}"} for i in range(3)]
    assert any(re.fullmatch(r"step 2\.10\.1 completed  transform  \S+", e) for e in events)


def test_watch_of_an_unknown_thread_exits_5(emu):
    res = scriptum(emu, "thread", "watch", "thr_unknown", timeout=30)
    assert res.rc == 5
    assert "thr_unknown" in res.err


# ---- -o json / -o yaml ----

@pytest.mark.timeout(60)
def test_watch_json_prints_ndjson_events_the_first_a_snapshot(emu):
    tid = paused_approval(emu)
    w = CLIProcess(emu, "-o", "json", "thread", "watch", tid)
    try:
        first = w.wait_for_line(lambda l: l.strip() != "", timeout=20, what="the snapshot")
        snap = json.loads(first)
        assert snap["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
        assert snap["thread"]["status"] == "THREAD_STATUS_PAUSED"
        resume(emu, tid)
        res = w.finish(30)
    finally:
        w.kill()
    assert res.rc == 0, res.err
    lines = res.out.decode().splitlines()
    events = [json.loads(l) for l in lines]  # every line parses
    assert [e["type"][len("THREAD_EVENT_TYPE_"):] for e in events] == [
        "SNAPSHOT", "STATUS", "STEP_FINISHED", "STEP_STARTED", "STEP_FINISHED", "STATUS"]
    assert [e["thread"]["status"][len("THREAD_STATUS_"):] for e in events] == [
        "PAUSED", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "COMPLETED"]
    assert [e.get("step", {}).get("stepPath") for e in events] == [
        None, None, "2", "3", "3", None]
    assert all(e["thread"]["threadId"] == tid for e in events)
    assert all(isinstance(e["atMs"], str) and e["atMs"].isdigit() for e in events)
    assert events[2]["step"]["status"] == "STEP_STATUS_COMPLETED"
    # the pause report goes to stderr in json mode
    for line in pause_block(tid):
        assert line in res.err


def test_watch_json_of_a_finished_thread_is_the_api_snapshot(emu):
    tid = emu.seed("fanout")[0]
    res = scriptum(emu, "-o", "json", "thread", "watch", tid, timeout=30)
    assert res.rc == 0, res.err
    lines = res.out.decode().splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert ev["thread"]["threadId"] == tid
    assert ev["thread"]["status"] == "THREAD_STATUS_COMPLETED"


@pytest.mark.timeout(60)
def test_watch_yaml_prints_one_document_per_event(emu):
    res = scriptum(emu, "-o", "yaml", "thread", "run", "echo", "--input", '{"y":1}',
                   timeout=40)
    assert res.rc == 0, res.err
    assert res.out.decode().lstrip().startswith("---")
    docs = [d for d in yaml.safe_load_all(res.out.decode()) if d is not None]
    assert docs[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert docs[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"
    tid = docs[-1]["thread"]["threadId"]
    assert emu.raw_output(tid) == b'{"y":1}'
    # the same data as the json mode gives: strings stay strings
    assert all(isinstance(d["atMs"], str) for d in docs)


# ---- when no watch stream can be had ----

@pytest.mark.timeout(90)
def test_watch_polls_when_the_watch_call_is_unimplemented(emu):
    emu.faults(errorRate=1, errorStatus=501, match="/watch")
    tid = paused_approval(emu)
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        time.sleep(2.5)
        assert w.proc.poll() is None, w.stderr_text()
        before = emu.requests_log()["byCall"].get("GetThread", 0)
        resume(emu, tid)
        res = w.finish(30)
    finally:
        w.kill()
    assert res.rc == 0, res.err
    log = emu.requests_log()
    assert log["byCall"].get("GetThread", 0) >= 2, log["byCall"]
    assert log["byCall"]["GetThread"] > before
    assert re.search(rf"^thread {tid} completed in \S+$", res.out.decode() + res.err, re.M)


@pytest.mark.timeout(120)
def test_watch_survives_streams_that_keep_being_cut(emu):
    emu.faults(cutAfterBytes=1, match="/watch")
    tid = paused_approval(emu)
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        time.sleep(2)
        assert w.proc.poll() is None, w.stderr_text()
        resume(emu, tid)
        res = w.finish(90)
    finally:
        w.kill()
    assert res.rc == 0, res.err


@pytest.mark.timeout(90)
def test_watch_reconnects_when_its_stream_drops_after_the_snapshot(emu):
    tid = paused_approval(emu)
    with raw_stream(emu, f"/threads/{tid}/watch") as s:
        snapshot = s.read_some(timeout=10)
    assert snapshot.endswith(b"\n") and snapshot.count(b"\n") == 1, snapshot
    # every watch stream now ends right after its snapshot's bytes
    emu.faults(cutAfterBytes=len(snapshot), match="/watch")
    emu.reset_requests()
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        w.wait_for_line(lambda l: "continue with:" in l, timeout=20, what="the pause report")
        resume(emu, tid)
        res = w.finish(60)
    finally:
        w.kill()
    assert res.rc == 0, res.err
    assert emu.requests_log()["byCall"].get("WatchThread", 0) >= 2
    text = res.out.decode() + res.err
    assert re.search(rf"^thread {tid} completed in \S+$", text, re.M), text
    events = event_texts(res.out.decode().splitlines())
    assert events[0] == "snapshot  paused, step 2 of 3: review"
    assert events.count("snapshot  paused, step 2 of 3: review") == 1  # unchanged: not again


# ---- run, cancel, signals ----

@pytest.mark.timeout(90)
def test_cancel_of_a_running_thread_ends_its_run_with_exit_1(emu):
    r = CLIProcess(emu, "thread", "run", "nightly")
    try:
        threads = wait_until(lambda: emu.get("/threads").get("threads"), timeout=20,
                             what="the run's thread")
        tid = threads[0]["threadId"]
        wait_for_status(emu, tid, {"running"})
        c = scriptum(emu, "-o", "json", "thread", "cancel", tid)
        assert c.rc == 0, c.err
        assert json.loads(c.out)["status"] == "THREAD_STATUS_CANCELLED"
        res = r.finish(30)
    finally:
        r.kill()
    assert res.rc == 1, res.err
    text = res.out.decode() + res.err
    assert re.search(rf"^thread {tid} cancelled after \S+", text, re.M), text
    assert event_texts(res.out.decode().splitlines())[-1] == "status  cancelled"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig,rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_a_watch_with_its_exit_status(emu, sig, rc):
    tid = paused_approval(emu)
    w = CLIProcess(emu, "thread", "watch", tid)
    try:
        w.wait_for_line(lambda l: "continue with:" in l, timeout=20, what="the pause report")
        w.signal(sig)
        res = w.finish(15)
    finally:
        w.kill()
        emu.post(f"/threads/{tid}/cancel")
    assert res.rc == rc, res.err


@pytest.mark.timeout(60)
def test_a_token_given_with_the_flag_is_wiped_from_the_process_arguments(new_emulator):
    emu = new_emulator(seed=None, token="argv-secret-token")
    tid = paused_approval(emu)
    w = CLIProcess(emu, "--token", "argv-secret-token", "thread", "watch", tid, token=None)
    try:
        w.wait_for_line(lambda l: "continue with:" in l, timeout=20, what="the pause report")
        with open(f"/proc/{w.pid}/cmdline", "rb") as f:
            cmdline = f.read()
        assert b"argv-secret-token" not in cmdline, cmdline
        assert b"watch" in cmdline
    finally:
        resume(emu, tid)
        res = w.finish(30)
    assert res.rc == 0, res.err
    assert "argv-secret-token" not in res.err and b"argv-secret-token" not in res.out
