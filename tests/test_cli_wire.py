"""Every command of the CLI against each --wire variant of the emulator
(SPEC.md §2.6): the CLI's -o json output is the canonical message
(camelCase keys, int64 as strings, full enum names) whatever the server
spelled, and says what the emulator's own answer says."""

import json

import pytest

from harness import (CLIProcess, MiB, assert_camel_case_keys, assert_same_message, canonical,
                     get_canonical,
                     list_all_canonical, scriptum, step_payloads, stream_canonical,
                     wait_for_status)

pytestmark = pytest.mark.timeout(90)

MODES = ["canonical", "snake", "wrapped", "array", "sse"]


@pytest.fixture(params=MODES)
def wire(request, new_emulator):
    """(mode, an emulator in that mode, with the catalog and no threads)."""
    return request.param, new_emulator("--wire", request.param, seed=None)


def cli_json(emu, *args, **kw):
    res = scriptum(emu, "-o", "json", *args, **kw)
    assert res.rc == 0, f"exit {res.rc}: {res.err}"
    doc = json.loads(res.out)
    assert_camel_case_keys(doc)
    return doc


def int64_strings(doc, keys=("createdAtMs", "startedAtMs", "finishedAtMs", "durationMs",
                             "atMs", "outputTotalBytes", "inputTotalBytes")):
    """int64 fields are strings in the CLI's json, whatever the wire said."""
    if isinstance(doc, list):
        for d in doc:
            int64_strings(d, keys)
    elif isinstance(doc, dict):
        for k, v in doc.items():
            if k in keys:
                assert isinstance(v, str) and v.isdigit(), (k, v)
            elif k != "metadata":
                int64_strings(v, keys)


def test_create_in_every_wire_mode(wire):
    mode, emu = wire
    t = cli_json(emu, "thread", "create", "echo", "--input", '{"w":"create"}',
                 "--metadata", "snake_key=v")
    assert t["scriptName"] == "echo"
    assert t["status"] == "THREAD_STATUS_PENDING"
    assert t["inputJson"] == '{"w":"create"}'
    assert t["metadata"] == {"snake_key": "v"}  # map keys are data: never renamed
    int64_strings(t)
    api = get_canonical(emu, f"/threads/{t['threadId']}")
    for k in ("threadId", "scriptName", "version", "inputJson", "createdAtMs", "totalSteps"):
        assert t[k] == api[k], k
    done = wait_for_status(emu, t["threadId"], {"completed"})
    assert done["metadata"] == {"snake_key": "v"}
    assert emu.raw_output(t["threadId"]) == b'{"w":"create"}'


def test_run_in_every_wire_mode(wire):
    mode, emu = wire
    res = scriptum(emu, "-o", "json", "thread", "run", "fanout", timeout=60)
    assert res.rc == 0, res.err
    events = [json.loads(line) for line in res.out.decode().splitlines()]
    assert events[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    for e in events:
        assert_camel_case_keys(e)
        int64_strings(e)
        assert e["type"].startswith("THREAD_EVENT_TYPE_")
        assert e["thread"]["status"].startswith("THREAD_STATUS_")
        if "step" in e:
            assert e["step"]["status"].startswith("STEP_STATUS_")
    last = events[-1]
    assert last["thread"]["status"] == "THREAD_STATUS_COMPLETED"
    tid = last["thread"]["threadId"]
    assert_same_message(last["thread"], get_canonical(emu, f"/threads/{tid}"))
    yields = [e for e in events if e["type"] == "THREAD_EVENT_TYPE_YIELD"]
    if events[0]["thread"].get("currentStepPath", "") in ("", "1"):  # watched from the start
        assert [json.loads(y["yieldedJson"]) for y in yields] == \
            [{"seq": i, "value": f"item-{i}"} for i in range(3)]


def test_run_result_in_every_wire_mode(wire):
    mode, emu = wire
    doc = '{"wire": "result", "n": [1, 2.50]}'
    res = scriptum(emu, "thread", "run", "echo", "--input", doc, "--result", timeout=60)
    assert res.rc == 0, res.err
    assert res.out == doc.encode()


def test_watch_in_every_wire_mode(wire):
    mode, emu = wire
    tid = emu.seed("strict", status="failed")[0]
    res = scriptum(emu, "-o", "json", "thread", "watch", tid, timeout=30)
    assert res.rc == 1, res.err  # failed
    lines = res.out.decode().splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    api, error = stream_canonical(emu, f"/threads/{tid}/watch", mode)
    assert error is None and len(api) == 1
    # a snapshot's atMs is when it was taken: each watch has its own
    assert ev["atMs"].isdigit() and abs(int(ev["atMs"]) - int(api[0]["atMs"])) < 60000
    assert_same_message({k: v for k, v in ev.items() if k != "atMs"},
                        {k: v for k, v in api[0].items() if k != "atMs"})
    assert ev["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert ev["thread"]["status"] == "THREAD_STATUS_FAILED"


@pytest.mark.timeout(60)
def test_watch_through_a_pause_in_every_wire_mode(wire):
    mode, emu = wire
    tid = canonical(emu.post("/threads", {"scriptName": "approval"}))["threadId"]
    wait_for_status(emu, tid, {"paused"})
    w = CLIProcess(emu, "-o", "json", "thread", "watch", tid)
    try:
        first = json.loads(w.wait_for_line(lambda l: l.strip() != "", timeout=20,
                                           what="the snapshot"))
        assert first["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
        assert first["thread"]["status"] == "THREAD_STATUS_PAUSED"
        r = scriptum(emu, "thread", "resume", tid, "--input", '{"value":"approve"}')
        assert r.rc == 0, r.err
        res = w.finish(30)
    finally:
        w.kill()
    assert res.rc == 0, res.err
    events = [json.loads(l) for l in res.out.decode().splitlines()]
    for e in events:
        assert_camel_case_keys(e)
        int64_strings(e)
    assert [e["type"][len("THREAD_EVENT_TYPE_"):] for e in events] == [
        "SNAPSHOT", "STATUS", "STEP_FINISHED", "STEP_STARTED", "STEP_FINISHED", "STATUS"]
    assert events[2]["step"]["status"] == "STEP_STATUS_COMPLETED"
    assert events[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"


def test_get_in_every_wire_mode(wire):
    mode, emu = wire
    tid = emu.seed("strict", status="failed", input='{"id":null}')[0]
    t = cli_json(emu, "thread", "get", tid)
    assert_same_message(t, get_canonical(emu, f"/threads/{tid}"))
    assert t["threadId"] == tid
    assert t["status"] == "THREAD_STATUS_FAILED"
    assert t["currentStepPath"] == "2"
    int64_strings(t)


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_get_status_names_are_canonical_in_every_wire_mode(wire, status):
    mode, emu = wire
    tid = emu.seed("echo", status=status)[0]
    t = cli_json(emu, "thread", "get", tid)
    assert t["status"] == "THREAD_STATUS_" + status.upper()


def test_list_in_every_wire_mode(wire):
    mode, emu = wire
    emu.seed("echo", count=60)
    emu.seed("strict", count=3, status="failed")
    emu.seed("echo", count=2, status="cancelled")
    got = cli_json(emu, "thread", "list", "--all", "--page-size", "20")
    want = list_all_canonical(emu)
    assert len(got) == 65
    assert_same_message(got, want)
    int64_strings(got)
    failed = cli_json(emu, "thread", "list", "--status", "failed")
    assert [t["threadId"] for t in failed] == \
        [t["threadId"] for t in want if t["status"] == "THREAD_STATUS_FAILED"]
    cancelled = cli_json(emu, "thread", "list", "--status", "cancelled", "--script", "echo")
    assert {t["status"] for t in cancelled} == {"THREAD_STATUS_CANCELLED"}
    assert len(cancelled) == 2


@pytest.mark.parametrize("size", [0, 1, 65537, 3 * MiB + 1])
def test_result_in_every_wire_mode(wire, size):
    mode, emu = wire
    tid = emu.seed("echo", outputBytes=size)[0]
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 0, res.err
    assert res.out == emu.raw_output(tid)


def test_result_save_in_every_wire_mode(wire, tmp_path):
    mode, emu = wire
    tid = emu.seed("bigreport", outputBytes=100000, input='{"wire":1}')[0]
    d = tmp_path / "save"
    res = scriptum(emu, "thread", "result", tid, "--save", str(d))
    assert res.rc == 0, res.err
    assert (d / "output.json").read_bytes() == emu.raw_output(tid)
    assert (d / "status").read_bytes() == b"completed\n"
    thread = json.loads((d / "thread.json").read_text())
    assert_same_message(thread, get_canonical(emu, f"/threads/{tid}"))
    payloads = step_payloads(emu, tid, mode=mode)
    assert (d / "steps" / "2" / "output.json").read_bytes() == payloads["2"][2]
    assert len(payloads["2"][2]) == 200000
    for path in ("1", "2", "3"):
        step = json.loads((d / "steps" / path / "step.json").read_text())
        assert_camel_case_keys(step)
        assert_same_message(step, {k: v for k, v in payloads[path][0].items()
                                   if k not in ("inputTruncated", "outputTruncated")
                                   or k in step})
        assert step["status"] == "STEP_STATUS_COMPLETED"


def test_steps_in_every_wire_mode(wire):
    mode, emu = wire
    tid = emu.seed("strict", status="failed")[0]
    got = cli_json(emu, "thread", "steps", tid)
    want = get_canonical(emu, f"/threads/{tid}/result")["steps"]
    assert_same_message(got, want)
    assert [s["status"] for s in got] == ["STEP_STATUS_COMPLETED", "STEP_STATUS_FAILED",
                                          "STEP_STATUS_SKIPPED"]
    detail = cli_json(emu, "thread", "steps", tid, "--step", "2", "--detail")
    assert_same_message(detail, get_canonical(emu, f"/threads/{tid}/result",
                                              stepPath="2")["stepDetails"])


def test_cancel_in_every_wire_mode(wire):
    mode, emu = wire
    t = cli_json(emu, "thread", "create", "nightly")
    tid = t["threadId"]
    wait_for_status(emu, tid, {"running"})
    c = cli_json(emu, "thread", "cancel", tid)
    assert c["threadId"] == tid
    assert c["status"] == "THREAD_STATUS_CANCELLED"
    assert_same_message(c, get_canonical(emu, f"/threads/{tid}"))
    res = scriptum(emu, "thread", "cancel", tid)
    assert res.rc == 2  # already finished
    assert "CancelThread" in res.err


@pytest.mark.timeout(60)
def test_resume_in_every_wire_mode(wire):
    mode, emu = wire
    t = cli_json(emu, "thread", "create", "approval", "--input", '{"title":"wire"}')
    tid = t["threadId"]
    wait_for_status(emu, tid, {"paused"})
    bad = scriptum(emu, "thread", "resume", tid, "--input", '{"value":"maybe"}')
    assert bad.rc == 2
    assert wait_for_status(emu, tid, {"paused"})["status"] == "THREAD_STATUS_PAUSED"
    r = cli_json(emu, "thread", "resume", tid, "--input", '{"value":"approve"}')
    assert r["threadId"] == tid
    assert r["status"] in ("THREAD_STATUS_RUNNING", "THREAD_STATUS_COMPLETED")
    wait_for_status(emu, tid, {"completed"})
    assert emu.raw_output(tid) == b'{"title":"wire"}'


def test_health_in_every_wire_mode(wire):
    mode, emu = wire
    h = cli_json(emu, "health")
    api = get_canonical(emu, "/health")
    assert h["status"] == api["status"] == "SERVING"
    assert h["version"] == api["version"]
    assert isinstance(h.get("uptimeSeconds", "0"), str)


def test_errors_in_every_wire_mode(wire):
    mode, emu = wire
    res = scriptum(emu, "thread", "get", "thr_nope")
    assert res.rc == 5
    assert "GetThread" in res.err and "thr_nope" in res.err
