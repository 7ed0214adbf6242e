"""Each --wire variant (SPEC.md §2.6, tests/emulator/wire.h), one emulator
per mode: the spelling rules of the mode (key case, unary wrapper, enum
spelling, int64 type, stream framing and content type), and that what the
messages say, once decoded, is what the canonical mode says: the same
threads with the same statuses, and stream bytes equal to the raw output.
Requests are accepted in camelCase and snake_case in every mode."""

import base64
import json
import re

import pytest

from harness import (API, MiB, camel_key, parse_stream, raw_stream, thread_ids,
                     wait_until)

pytestmark = pytest.mark.timeout(90)

MODES = ["canonical", "snake", "wrapped", "array", "sse"]

THREAD = ["unspecified", "pending", "running", "paused", "completed", "failed", "cancelled"]
STEP = ["unspecified", "pending", "running", "paused", "completed", "failed", "skipped",
        "cancelled"]
EVENT = ["unspecified", "snapshot", "status", "step_started", "step_finished", "yield"]
PART = ["unspecified", "input", "output"]
ENUMS = {"thread": (THREAD, "THREAD_STATUS_"), "step": (STEP, "STEP_STATUS_"),
         "event": (EVENT, "THREAD_EVENT_TYPE_"), "part": (PART, "STEP_PART_")}

INT64 = {"createdAtMs", "startedAtMs", "finishedAtMs", "durationMs", "atMs",
         "outputTotalBytes", "inputTotalBytes", "totalYielded", "uptimeSeconds",
         "updatedAtMs"}
# what a mode leaves out or changes from one run to another
VOLATILE = {"threadId", "createdAtMs", "startedAtMs", "finishedAtMs", "durationMs", "atMs",
            "executionId", "logsUrl", "updatedAtMs", "uptimeSeconds", "nextPageToken",
            "outputData", "data", "outputJson", "inputJson", "yieldedJson"}

# the seeds of the demo catalog: the oldest 42 threads of every demo emulator
DEMO_SEEDED = 42


def spelled(mode, kind, word):
    """How mode spells an enum value."""
    table, prefix = ENUMS[kind]
    if mode == "array":
        return table.index(word)
    if mode == "sse":
        return word
    if mode == "wrapped":
        return "CANCELED" if word == "cancelled" else word.upper()
    return prefix + word.upper()


def enum_word(mode, kind, value):
    """The word of an enum value, checking that mode spells it its way."""
    table, _ = ENUMS[kind]
    for word in table:
        if spelled(mode, kind, word) == value:
            return word
    raise AssertionError(f"{value!r} is not a {kind} enum as the {mode} mode spells it")


def to_canonical(mode, value, enum_kind=None):
    """Checks a message's spelling for mode and rewrites it as the canonical
    mode spells it (camelCase, prefixed enums, int64 as strings)."""
    if isinstance(value, list):
        return [to_canonical(mode, v, enum_kind) for v in value]
    if not isinstance(value, dict):
        return value
    keys = [camel_key(k) if mode == "snake" else k for k in value]
    if "threadId" in keys:
        status_kind = "thread"
    elif "stepPath" in keys and "part" not in keys:
        status_kind = "step"
    else:
        status_kind = None
    out = {}
    for key, v in value.items():
        if mode == "snake":
            assert re.fullmatch(r"[a-z0-9_]+", key), f"{key!r} is not snake_case"
        else:
            assert "_" not in key, f"{key!r} is not camelCase"
        ck = camel_key(key) if mode == "snake" else key
        if ck == "metadata":
            out[ck] = v  # the user's map: its keys are data
        elif ck in INT64:
            if mode == "wrapped":
                assert isinstance(v, int) and not isinstance(v, bool), (ck, v)
            else:
                assert isinstance(v, str) and v.isdigit(), (ck, v)
            out[ck] = str(v)
        elif ck == "status" and status_kind is not None:
            out[ck] = spelled("canonical", status_kind, enum_word(mode, status_kind, v))
        elif ck == "type" and "atMs" in keys:
            out[ck] = spelled("canonical", "event", enum_word(mode, "event", v))
        elif ck == "part":
            out[ck] = spelled("canonical", "part", enum_word(mode, "part", v))
        else:
            out[ck] = to_canonical(mode, v)
    return out


def stable(value):
    """value without what differs between two emulators."""
    if isinstance(value, list):
        return [stable(v) for v in value]
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    return value


class Wire:
    """An emulator in one wire mode and how to read it."""

    WRAPPERS = {"thread", "result", "response", "script", "health"}

    def __init__(self, mode, emu):
        self.mode = mode
        self.emu = emu

    @property
    def framing(self):
        return {"array": "array", "sse": "sse"}.get(self.mode, "ndjson")

    def unary(self, method, path, wrapper, body=None, params=None):
        status, headers, data = self.emu.request(method, API + path, body=body,
                                                 params=params)
        assert status == 200, data[:300]
        assert headers["Content-Type"].startswith("application/json")
        doc = json.loads(data)
        if self.mode == "wrapped":
            assert list(doc) == [wrapper], f"not wrapped in {wrapper!r}: {list(doc)}"
            doc = doc[wrapper]
        else:
            assert not (len(doc) == 1 and set(doc) <= self.WRAPPERS and
                        isinstance(next(iter(doc.values())), dict)), doc
        return to_canonical(self.mode, doc)

    def get(self, path, wrapper, **params):
        return self.unary("GET", path, wrapper, params=params or None)

    def post(self, path, wrapper, body):
        return self.unary("POST", path, wrapper, body=body)

    def check_framing(self, body, headers):
        """The framing rules of the mode, on a whole stream body."""
        ctype = headers.get("Content-Type", "")
        if self.mode == "sse":
            assert ctype.startswith("text/event-stream")
            blocks = [b for b in body.decode().split("\n\n") if b]
            assert all(b.startswith("data: ") for b in blocks), blocks[:2]
            items = [json.loads(b[6:]) for b in blocks]
        else:
            assert ctype.startswith("application/json")
            if self.mode == "array":
                items = json.loads(body)
                assert isinstance(items, list)
            else:
                assert body.endswith(b"\n")
                items = [json.loads(line) for line in body.split(b"\n") if line]
        for item in items:
            if list(item) == ["error"]:
                continue
            wrapped = list(item) == ["result"]
            if self.mode in ("canonical", "wrapped", "sse"):
                assert wrapped, f"no result wrapper: {str(item)[:200]}"
            else:
                assert not wrapped, f"a result wrapper in the {self.mode} mode"

    def stream(self, path, params=None):
        """A whole stream: (canonical messages, error or None)."""
        status, headers, body = self.emu.request("GET", API + path, params=params)
        assert status == 200, body[:300]
        assert headers.get("Transfer-Encoding") == "chunked"
        self.check_framing(body, headers)
        messages, error = parse_stream(body, self.framing)
        return [to_canonical(self.mode, m) for m in messages], error


@pytest.fixture(scope="module")
def reference(start_emulator):
    return start_emulator()


@pytest.fixture(scope="module", params=MODES)
def wire(request, start_emulator):
    return Wire(request.param, start_emulator("--wire", request.param))


def list_threads(w, **params):
    """Every thread, paging through the mode's own spelling of the token."""
    out, token = [], None
    while True:
        q = dict(params, pageSize=1000)
        if token:
            q["pageToken"] = token
        page = w.get("/threads", "response", **q)
        out += page.get("threads", [])
        token = page.get("nextPageToken")
        if not token:
            return out


# ---- the control calls do not change with the mode ----

def test_seed_answers_thread_ids_in_camel_case_in_every_mode(wire):
    """/_emulator/ is the test's own API (SPEC §6: {"threadIds": [...]});
    it is not the gateway and does not follow --wire."""
    status, _, data = wire.emu.request("POST", "/_emulator/seed",
                                       body={"script": "echo", "count": 2}, auth=False)
    assert status == 200
    doc = json.loads(data)
    assert list(doc) == ["threadIds"], doc
    assert len(doc["threadIds"]) == 2


# ---- unary ----

def test_threads_read_the_same_in_every_mode(wire, reference):
    ref = Wire("canonical", reference)
    mine = list_threads(wire)[-DEMO_SEEDED:]
    theirs = list_threads(ref)[-DEMO_SEEDED:]
    assert stable(mine) == stable(theirs)
    words = [enum_word("canonical", "thread", t["status"]) for t in mine]
    assert words.count("cancelled") == 9 and words.count("failed") == 9
    for t in mine:
        assert wire.get(f"/threads/{t['threadId']}", "thread") == t


def test_status_words_are_spelled_the_modes_way(wire):
    ids = wire.emu.seed("echo", count=1, status="cancelled") + \
        wire.emu.seed("strict", count=1, status="failed") + wire.emu.seed("echo", count=1)
    status, _, data = wire.emu.request("GET", API + f"/threads/{ids[0]}")
    raw = json.loads(data)
    raw = raw["thread"] if wire.mode == "wrapped" else raw
    assert raw["status"] == spelled(wire.mode, "thread", "cancelled")
    assert {"canonical": "THREAD_STATUS_CANCELLED", "snake": "THREAD_STATUS_CANCELLED",
            "wrapped": "CANCELED", "array": 6, "sse": "cancelled"}[wire.mode] == raw["status"]
    for tid, word in zip(ids, ("cancelled", "failed", "completed")):
        assert wire.get(f"/threads/{tid}", "thread")["status"] == \
            spelled("canonical", "thread", word)
    # a status filter in any spelling works in every mode
    for spelling in ("CANCELED", "THREAD_STATUS_CANCELLED", "cancelled", "6"):
        got = list_threads(wire, statusFilter=spelling)
        assert ids[0] in [t["threadId"] for t in got]
        assert {t["status"] for t in got} == {"THREAD_STATUS_CANCELLED"}


def test_create_takes_camel_and_snake_case_and_keeps_metadata_keys(wire):
    md = {"camelKey": "a", "snake_key": "b", "UPPER": "c"}
    t1 = wire.post("/threads", "thread", {"scriptName": "echo", "inputJson": '{"k":1}',
                                          "metadata": md, "callbackUrl": "https://x.invalid",
                                          "loadEnv": True})
    t2 = wire.post("/threads", "thread", {"script_name": "echo", "input_json": '{"k":1}',
                                          "metadata": md, "callback_url": "https://x.invalid",
                                          "load_env": True})
    for t in (t1, t2):
        assert t["status"] == "THREAD_STATUS_PENDING"
        assert t["scriptName"] == "echo" and t["inputJson"] == '{"k":1}'
        assert t["metadata"] == md  # keys untouched, even in the snake mode
    # the raw metadata keys are not renamed
    status, _, data = wire.emu.request("GET", API + f"/threads/{t2['threadId']}")
    assert b'"camelKey"' in data and b'"snake_key"' in data
    for t in (t1, t2):
        done = wait_until(lambda: (lambda x: x if x["status"] == "THREAD_STATUS_COMPLETED"
                                   else None)(wire.get(f"/threads/{t['threadId']}", "thread")),
                          what="completed")
        assert done["metadata"] == md
        assert wire.emu.raw_output(t["threadId"]) == b'{"k":1}'


def test_list_threads_takes_snake_case_query_names(wire):
    camel = wire.get("/threads", "response", pageSize=2, statusFilter="failed",
                     scriptNameFilter="strict")
    snake = wire.get("/threads", "response", page_size=2, status_filter="failed",
                     script_name_filter="strict")
    assert thread_ids(camel["threads"]) == thread_ids(snake["threads"])
    assert len(snake["threads"]) == 2 and snake["nextPageToken"]
    status, _, data = wire.emu.request("GET", API + "/threads", params={"pageSize": 1})
    raw = json.loads(data)
    raw = raw["response"] if wire.mode == "wrapped" else raw
    assert ("next_page_token" if wire.mode == "snake" else "nextPageToken") in raw


def test_get_result_reads_the_same_in_every_mode(wire, reference):
    ref = Wire("canonical", reference)
    for script in ("fanout", "bigreport", "strict"):
        mine = wire.get("/threads", "response", scriptNameFilter=script,
                        pageSize=1000)["threads"][-1]
        theirs = ref.get("/threads", "response", scriptNameFilter=script,
                         pageSize=1000)["threads"][-1]
        for path in (None, "2"):
            params = {"stepPath": path} if path else {}
            a = wire.get(f"/threads/{mine['threadId']}/result", "result", **params)
            b = ref.get(f"/threads/{theirs['threadId']}/result", "result", **params)
            assert stable(a) == stable(b)
            if "outputData" in a:
                raw = wire.emu.raw_output(mine["threadId"])
                assert base64.b64decode(a["outputData"]) == raw[:4 * MiB]
                assert a["outputTotalBytes"] == str(len(raw))
    r = wire.get(f"/threads/{mine['threadId']}/result", "result", step_path="2",
                 output_only="true")
    assert "steps" not in r


def test_scripts_health_and_versions_in_every_mode(wire, reference):
    ref = Wire("canonical", reference)
    assert stable(wire.get("/scripts", "response")) == stable(ref.get("/scripts", "response"))
    assert stable(wire.get("/scripts/echo", "script")) == \
        stable(ref.get("/scripts/echo", "script"))
    assert stable(wire.get("/scripts/echo/versions", "response")) == \
        stable(ref.get("/scripts/echo/versions", "response"))
    assert wire.get("/health", "health")["status"] == "SERVING"
    page = wire.get("/scripts", "response", page_size=3)
    assert len(page["scripts"]) == 3
    rest = wire.get("/scripts", "response", page_size=3, page_token=page["nextPageToken"])
    assert rest["scripts"][0]["name"] == "flaky"


def test_errors_are_bare_in_every_mode(wire):
    status, headers, data = wire.emu.request("GET", API + "/threads/thr_nope")
    assert status == 404
    assert json.loads(data) == {"code": 5, "message": json.loads(data)["message"],
                                "details": []}
    status, _, data = wire.emu.request("POST", API + "/threads", body={"script_name": ""})
    assert status == 400 and json.loads(data)["code"] == 3


def test_cancel_and_resume_in_every_mode(wire):
    t = wire.post("/threads", "thread", {"script_name": "approval"})
    tid = t["threadId"]
    wait_until(lambda: wire.get(f"/threads/{tid}", "thread")["status"] ==
               "THREAD_STATUS_PAUSED", what="paused")
    d = wire.get(f"/threads/{tid}/result", "result", stepPath="2")["stepDetails"][0]
    assert d["status"] == "STEP_STATUS_PAUSED"
    assert d["pendingInput"] == {"prompt": "Publish this draft?",
                                 "options": ["approve", "reject"], "type": "string"}
    r = wire.post(f"/threads/{tid}/resume", "thread",
                  {"step_input_override_json": '{"value":"approve"}'})
    assert r["status"] == "THREAD_STATUS_RUNNING"
    n = wire.post("/threads", "thread", {"scriptName": "nightly"})
    c = wire.post(f"/threads/{n['threadId']}/cancel", "thread", {})
    assert c["status"] == "THREAD_STATUS_CANCELLED"


# ---- streams ----

@pytest.mark.parametrize("size", [0, 1, 23, 65537, 3 * MiB + 1])
def test_result_stream_bytes_equal_the_raw_output_in_every_mode(wire, size):
    tid = wire.emu.seed("echo", count=1, outputBytes=size)[0]
    raw = wire.emu.raw_output(tid)
    assert len(raw) == size
    messages, error = wire.stream(f"/threads/{tid}/result/stream",
                                  {"max_chunk_bytes": 65536})
    assert error is None
    assert messages[0] == {"meta": {k: v for k, v in (
        ("threadId", tid), ("status", "THREAD_STATUS_COMPLETED"),
        ("outputTotalBytes", str(size))) if v != "0"}}
    chunks = [m["chunk"] for m in messages[1:]]
    assert len(chunks) == max(1, -(-size // 65536))
    for i, c in enumerate(chunks):
        assert c.get("chunkIndex", 0) == i
        assert c.get("isFinal", False) == (i == len(chunks) - 1)
    assert b"".join(base64.b64decode(c.get("data", "")) for c in chunks) == raw


def test_step_stream_reads_the_same_in_every_mode(wire, reference):
    ref = Wire("canonical", reference)
    mine = wire.emu.seed("bigreport", count=1, input='{"q":1}')[0]
    theirs = reference.seed("bigreport", count=1, input='{"q":1}')[0]
    a, err_a = wire.stream(f"/threads/{mine}/steps/stream", {"maxChunkBytes": 65536})
    b, err_b = ref.stream(f"/threads/{theirs}/steps/stream", {"maxChunkBytes": 65536})
    assert err_a is None and err_b is None
    assert stable(a) == stable(b)
    parts = [m["stepChunk"]["part"] for m in a if "stepChunk" in m]
    assert set(parts) == {"STEP_PART_INPUT", "STEP_PART_OUTPUT"}
    out = b"".join(base64.b64decode(m["stepChunk"].get("data", "")) for m in a
                   if m.get("stepChunk", {}).get("stepPath") == "2"
                   and m["stepChunk"]["part"] == "STEP_PART_OUTPUT")
    assert len(out) == 200000
    d = wire.get(f"/threads/{mine}/result", "result", stepPath="2")["stepDetails"][0]
    assert out[:65536] == d["outputJson"].encode()
    assert d["outputTruncated"] is True and d["outputTotalBytes"] == "200000"
    inp = b"".join(base64.b64decode(m["stepChunk"].get("data", "")) for m in a
                   if m.get("stepChunk", {}).get("stepPath") == "1"
                   and m["stepChunk"]["part"] == "STEP_PART_INPUT")
    assert inp == b'{"q":1}'


def test_watch_of_a_finished_thread_in_every_mode(wire):
    tid = wire.emu.seed("echo", count=1, status="cancelled")[0]
    messages, error = wire.stream(f"/threads/{tid}/watch")
    assert error is None
    assert len(messages) == 1
    assert messages[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert messages[0]["thread"] == wire.get(f"/threads/{tid}", "thread")


def watch_through_resume(wire, path):
    """Opens a watch on a paused approval thread, resumes it once the
    snapshot has arrived, and returns the whole stream, canonical."""
    tid = wire.post("/threads", "thread", {"scriptName": "approval"})["threadId"]
    wait_until(lambda: wire.get(f"/threads/{tid}", "thread")["status"] ==
               "THREAD_STATUS_PAUSED", what="paused")
    with raw_stream(wire.emu, path.format(tid=tid)) as s:
        assert s.status == 200
        head = s.read_some()  # the snapshot
        assert head
        assert s.idle(0.3)
        wire.post(f"/threads/{tid}/resume", "thread", {"stepInputOverrideJson": '"approve"'})
        body = head + s.read_all()
        headers = {"Content-Type": s.headers.get("content-type", "")}
    wire.check_framing(body, headers)
    messages, error = parse_stream(body, wire.framing)
    assert error is None
    return [to_canonical(wire.mode, m) for m in messages]


def test_watch_thread_events_read_the_same_in_every_mode(wire):
    events = watch_through_resume(wire, "/threads/{tid}/watch")
    got = [(e["type"][len("THREAD_EVENT_TYPE_"):], e.get("step", {}).get("stepPath"),
            e["thread"]["status"][len("THREAD_STATUS_"):]) for e in events]
    assert got == [("SNAPSHOT", None, "PAUSED"), ("STATUS", None, "RUNNING"),
                   ("STEP_FINISHED", "2", "RUNNING"), ("STEP_STARTED", "3", "RUNNING"),
                   ("STEP_FINISHED", "3", "RUNNING"), ("STATUS", None, "COMPLETED")]


def test_watch_step_events_read_the_same_in_every_mode(wire):
    events = watch_through_resume(wire, "/threads/{tid}/steps/2/watch")
    assert [(e["type"], e["step"]["status"]) for e in events] == [
        ("THREAD_EVENT_TYPE_SNAPSHOT", "STEP_STATUS_PAUSED"),
        ("THREAD_EVENT_TYPE_STEP_FINISHED", "STEP_STATUS_COMPLETED")]


def test_mid_stream_error_is_the_last_item_of_the_framing(wire):
    tid = wire.emu.seed("echo", count=1, outputBytes=MiB)[0]
    raw = wire.emu.raw_output(tid)
    wire.emu.faults(errorAfterBytes=150000, match="/result/stream")
    try:
        status, headers, body = wire.emu.request(
            "GET", API + f"/threads/{tid}/result/stream", params={"maxChunkBytes": 65536})
    finally:
        wire.emu.clear_faults()
    assert status == 200
    wire.check_framing(body, headers)
    messages, error = parse_stream(body, wire.framing)
    assert error is not None
    assert error["code"] == 14 and error["message"] and error["details"] == []
    messages = [to_canonical(wire.mode, m) for m in messages]
    assert "meta" in messages[0]
    chunks = [m["chunk"] for m in messages[1:]]
    assert chunks and not any(c.get("isFinal") for c in chunks)
    got = b"".join(base64.b64decode(c["data"]) for c in chunks)
    assert got == raw[:len(got)]
    # nothing follows the error
    if wire.mode == "array":
        assert list(json.loads(body)[-1]) == ["error"]
    elif wire.mode == "sse":
        assert body.decode().rstrip().split("\n\n")[-1].startswith('data: {"error"')
    else:
        assert list(json.loads(body.rstrip().split(b"\n")[-1])) == ["error"]
