"""Each --wire variant (SPEC.md §2.6, tests/emulator/wire.h), one emulator
per mode: the spelling rules of the mode (key case, unary wrapper, enum
spelling, int64 type, stream framing and content type), and that what the
messages say, once decoded, is what the canonical mode says: the same
threads with the same statuses, and stream bytes equal to the raw output.
Requests are accepted in camelCase and snake_case in every mode.

Then the knobs (--wire BASE,KNOB,...), one emulator each: the shape each
puts on the wire, and that the answers still mean what the canonical ones
do; and the random mode: reproducible from its seed, varied, and always
meaning what the canonical mode says."""

import base64
import json
import re

import pytest

from harness import (API, EMULATOR_UNKNOWN_KEYS, Emulator, MiB, camel_key, canonical_enum,
                     canonical_message, parse_stream, raw_stream, thread_ids, wait_until)

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


# ---- knobs (--wire BASE,KNOB,...) and the random mode ----
#
# Each knob alone on the canonical base, one emulator per knob: the shape
# it puts on the wire, and that what the answer says is unchanged
# (harness.canonical_message reads any spelling).

def unknown(keys):
    """Which of keys are the emulator's unknown keys."""
    return {k for k in keys if camel_key(k) in EMULATOR_UNKNOWN_KEYS}


@pytest.fixture(scope="module")
def knob(start_emulator):
    """knob("nulls") -> an emulator started with --wire nulls (one each)."""
    started = {}

    def get(spec, *extra):
        key = (spec,) + extra
        if key not in started:
            started[key] = start_emulator("--wire", spec, *extra)
        return started[key]
    return get


def raw(emu, path, method="GET", body=None, **params):
    status, headers, data = emu.request(method, API + path, body=body, params=params or None)
    assert status == 200, data[:300]
    return json.loads(data)


def raw_items(emu, path, **params):
    """A stream's items as sent (wrappers kept), whatever its framing."""
    status, _, body = emu.request("GET", API + path, params=params or None)
    assert status == 200, body[:300]
    if body.startswith(b"data:"):
        return [json.loads(b[6:]) for b in body.decode().split("\n\n") if b]
    if body.startswith(b"["):
        return json.loads(body)
    return [json.loads(line) for line in body.split(b"\n") if line]


def objects(value, skip_unknown=True):
    """Every object in value (value included), but not inside metadata maps
    nor inside the values of the emulator's unknown keys."""
    if isinstance(value, list):
        for v in value:
            yield from objects(v, skip_unknown)
    elif isinstance(value, dict):
        yield value
        for k, v in value.items():
            if k != "metadata" and not (skip_unknown and unknown([k])):
                yield from objects(v, skip_unknown)


def fields(value):
    """Every (key, value) pair of every object in value."""
    for obj in objects(value):
        yield from obj.items()


def test_siblings_put_unknown_keys_beside_the_wrapper(knob, reference):
    emu = knob("siblings")
    tid = emu.seed("echo", count=1)[0]
    kinds = set()
    for _ in range(8):
        doc = raw(emu, f"/threads/{tid}")
        assert doc["thread"]["threadId"] == tid
        assert len(doc) > 1 and unknown(doc) == set(doc) - {"thread"}, list(doc)
        assert doc["requestId"].startswith("req-")
        kinds |= {type(v).__name__ for k, v in doc.items() if k != "thread"}
    assert {"str", "int", "dict"} <= kinds
    doc = raw(emu, "/threads", pageSize=2)
    assert "response" in doc and len(doc) > 1 and len(doc["response"]["threads"]) == 2
    doc = raw(emu, "/scripts/echo")
    assert "script" in doc and "requestId" in doc
    assert stable(canonical_message(doc)) == stable(canonical_message(reference.get("/scripts/echo")))


def test_minimal_answers_create_with_only_the_id_and_cancel_resume_with_nothing(knob):
    emu = knob("minimal")
    created = raw(emu, "/threads", "POST", {"scriptName": "approval"})
    assert list(created) == ["threadId"] and created["threadId"].startswith("thr_")
    tid = created["threadId"]
    wait_until(lambda: canonical_message(raw(emu, f"/threads/{tid}"))["status"] ==
               "THREAD_STATUS_PAUSED", what="paused")
    assert raw(emu, f"/threads/{tid}/resume", "POST",
               {"stepInputOverrideJson": '"approve"'}) == {}
    other = raw(emu, "/threads", "POST", {"scriptName": "nightly"})["threadId"]
    assert raw(emu, f"/threads/{other}/cancel", "POST", {}) == {}
    assert canonical_message(raw(emu, f"/threads/{other}"))["status"] == \
        "THREAD_STATUS_CANCELLED"


def test_intenums_spell_every_enum_as_an_integer(knob):
    emu = knob("intenums")
    tid = emu.seed("echo", count=1, status="cancelled")[0]
    assert raw(emu, "/scripts/echo")["status"] == 3  # SCRIPT_STATUS_ACTIVE
    assert [v["status"] for v in raw(emu, "/scripts/echo/versions")["versions"]] == [4, 5]
    assert canonical_message(raw(emu, "/scripts/echo"))["status"] == "SCRIPT_STATUS_ACTIVE"
    assert canonical_enum("version", 5) == "VERSION_STATUS_SUPERSEDED"
    t = raw(emu, f"/threads/{tid}")
    assert t["status"] == 6
    result = raw(emu, f"/threads/{tid}/result")
    assert {s["status"] for s in result["steps"]} <= set(range(1, 8))
    items = raw_items(emu, f"/threads/{tid}/steps/stream")
    assert {i["result"]["stepChunk"]["part"] for i in items if "stepChunk" in i["result"]} \
        == {1, 2}
    events = raw_items(emu, f"/threads/{tid}/watch")
    assert [e["result"]["type"] for e in events] == [1]


def test_unknownenums_send_unknown_script_statuses_and_event_types(knob):
    emu = knob("unknownenums")
    tid = emu.seed("echo", count=1, status="failed")[0]
    assert raw(emu, "/scripts/echo")["status"] == "SCRIPT_STATUS_ARCHIVED_FOR_TEST"
    assert {s["status"] for s in raw(emu, "/scripts")["scripts"]} == \
        {"SCRIPT_STATUS_ARCHIVED_FOR_TEST"}
    assert {v["status"] for v in raw(emu, "/scripts/echo/versions")["versions"]} == \
        {"VERSION_STATUS_ARCHIVED_FOR_TEST"}
    # a thread's status keeps its meaning
    assert raw(emu, f"/threads/{tid}")["status"] == "THREAD_STATUS_FAILED"
    types = [e["result"]["type"] for e in raw_items(emu, f"/threads/{tid}/watch")]
    assert types == ["THREAD_EVENT_TYPE_SNAPSHOT", "THREAD_EVENT_TYPE_HEARTBEAT"]
    types = [e["result"]["type"] for e in raw_items(emu, f"/threads/{tid}/steps/1/watch")]
    assert types[0] == "THREAD_EVENT_TYPE_SNAPSHOT" and "THREAD_EVENT_TYPE_HEARTBEAT" in types


def test_nulls_send_zero_fields_as_zero_or_null(knob, reference):
    emu = knob("nulls")
    tid = emu.seed("bigreport", count=1, input='{"q":1}')[0]
    doc = raw(emu, f"/threads/{tid}/result", stepPath="1")
    zeros = [(k, v) for k, v in fields(doc) if v in (None, "", 0, "0", False)]
    assert any(v is None for _, v in zeros) and any(v is not None for _, v in zeros), zeros
    detail = doc["stepDetails"][0]
    assert "error" in detail and detail["error"] in (None, "")
    last = raw(emu, "/threads", pageSize=1000)
    assert "nextPageToken" in last and last["nextPageToken"] in (None, "")
    ref_tid = reference.seed("bigreport", count=1, input='{"q":1}')[0]
    assert stable(canonical_message(doc)) == stable(canonical_message(
        reference.get(f"/threads/{ref_tid}/result", stepPath="1")))


def test_unknownkeys_reach_every_object_of_every_message(knob):
    emu = knob("unknownkeys")
    tid = emu.seed("approval", count=1)[0]
    for doc in (raw(emu, f"/threads/{tid}/result", stepPath="2"),
                raw(emu, "/threads", pageSize=3), raw(emu, "/scripts/echo/versions")):
        objs = list(objects(doc))
        assert len(objs) > 2
        for obj in objs:
            assert unknown(obj), obj
    nested = raw(emu, f"/threads/{tid}/result", stepPath="2")["stepDetails"][0]
    assert unknown(nested)
    for item in raw_items(emu, f"/threads/{tid}/result/stream"):
        assert "result" in item and unknown(item) == set(item) - {"result"}
        assert len(item) > 1  # beside the stream's wrapper
        for obj in objects(item["result"]):  # the message and what it holds
            assert unknown(obj), obj


def test_mixedcase_mixes_camel_and_snake_names_in_one_object(knob, reference):
    emu = knob("mixedcase")
    tid = emu.seed("echo", count=1)[0]
    t = raw(emu, f"/threads/{tid}")
    many = [k for k in t if k != "metadata" and re.search(r"[A-Z_]", k)]
    assert any("_" in k for k in many) and any(re.search("[A-Z]", k) for k in many), list(t)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)+|[a-z]+([A-Z][a-z]*)+", k) for k in many)
    step = raw(emu, f"/threads/{tid}/result")["steps"][0]
    assert any("_" in k for k in step) and any(re.search("[A-Z]", k) for k in step)
    ref = reference.seed("echo", count=1)[0]
    assert stable(canonical_message(t)) == \
        stable(canonical_message(reference.get(f"/threads/{ref}")))


def test_knobs_compose_and_leave_control_calls_alone(knob):
    emu = knob("wrapped,siblings,intenums,nulls,unknownkeys,mixedcase,unknownenums",
               "--wire-seed", "5")
    status, _, data = emu.request("POST", "/_emulator/seed", body={"script": "echo"},
                                  auth=False)
    assert status == 200 and list(json.loads(data)) == ["threadIds"]
    tid = json.loads(data)["threadIds"][0]
    log = emu.requests_log()
    assert set(log) == {"total", "byCall", "recent"}
    doc = raw(emu, f"/threads/{tid}")
    assert doc["thread"]["status"] == 4 and "requestId" in doc
    # errors stay bare and canonical
    status, _, data = emu.request("GET", API + "/threads/thr_nope")
    assert status == 404 and set(json.loads(data)) == {"code", "message", "details"}


@pytest.mark.parametrize("spec", ["bogus", "random,random", "canonical,snake", "nulls,,",
                                  ""])
def test_a_wire_that_is_not_one_is_a_usage_error(spec):
    with pytest.raises(RuntimeError):
        Emulator("--wire", spec)


# ---- random ----

def masked(data):
    """Bytes without what differs between two runs of the emulator: thread
    ids, clock readings and the generated payloads."""
    data = re.sub(rb"(thr|exec)_[a-z0-9]{12}", rb"\1_X", data)
    data = re.sub(rb"\d{9,}", b"0", data)
    return re.sub(rb'("(?:outputData|output_data|data|outputJson|output_json)":)'
                  rb'"(?:[^"\\]|\\.)*"', rb'\1"D"', data)


def random_session(emu):
    """One fixed sequence of calls; each answer's bytes, masked."""
    ids = emu.seed("bigreport", count=1, input='{"q":1}', outputBytes=3000) + \
        emu.seed("echo", count=1, status="cancelled")
    out = []
    calls = [("GET", f"/threads/{ids[0]}", None), ("GET", "/threads", {"pageSize": 4}),
             ("GET", f"/threads/{ids[0]}/result", {"stepPath": "2"}),
             ("GET", f"/threads/{ids[1]}/result", None),
             ("GET", "/scripts", None), ("GET", "/scripts/echo/versions", None),
             ("GET", f"/threads/{ids[1]}/watch", None),
             ("GET", f"/threads/{ids[0]}/steps/stream", {"maxChunkBytes": 65536}),
             ("GET", f"/threads/{ids[1]}/result/stream", None),
             ("POST", "/threads", {"scriptName": "nightly"})]
    for method, path, arg in calls:
        body = arg if method == "POST" else None
        params = arg if method == "GET" else None
        status, headers, data = emu.request(method, API + path, body=body, params=params)
        assert status == 200, data[:300]
        out.append((headers.get("Content-Type"), masked(data)))
    return out


def test_random_replays_the_same_bytes_from_the_same_seed(new_emulator):
    a = random_session(new_emulator("--wire", "random", "--wire-seed", "42"))
    b = random_session(new_emulator("--wire", "random", "--wire-seed", "42"))
    assert a == b
    c = random_session(new_emulator("--wire", "random", "--wire-seed", "43"))
    assert a != c
    assert sum(x != y for x, y in zip(a, c)) >= len(a) // 2


def test_random_varies_the_spelling_within_one_run(knob):
    emu = knob("random", "--wire-seed", "9")
    tid = emu.seed("echo", count=1, status="cancelled")[0]
    shapes, statuses, framings = set(), set(), set()
    for _ in range(12):
        doc = raw(emu, f"/threads/{tid}")
        t = canonical_message(doc)
        assert t["threadId"] == tid and t["status"] == "THREAD_STATUS_CANCELLED"
        inner = doc.get("thread", doc)
        statuses.add(json.dumps(inner["status"]))
        shapes.add(("thread" in doc, len(doc) > 1 and "thread" in doc,
                    "threadId" in inner, "thread_id" in inner))
        status, _, body = emu.request("GET", API + f"/threads/{tid}/watch")
        framings.add(body[:7])
    assert len(statuses) >= 3, statuses
    assert len(shapes) >= 3, shapes
    assert len(framings) >= 2, framings


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_answers_mean_what_the_canonical_ones_do(knob, reference, seed):
    emu = knob("random", "--wire-seed", str(seed))
    mine = emu.seed("bigreport", count=1, input='{"q":1}', outputBytes=3000) + \
        emu.seed("echo", count=1, status="cancelled")
    theirs = reference.seed("bigreport", count=1, input='{"q":1}', outputBytes=3000) + \
        reference.seed("echo", count=1, status="cancelled")

    def same(path, **params):
        a = raw(emu, path.format(*mine), **params)
        b = raw(reference, path.format(*theirs), **params)
        assert stable(canonical_message(a)) == stable(canonical_message(b)), path
        return canonical_message(a)

    for _ in range(3):
        assert same("/threads/{0}")["threadId"] == mine[0]
        same("/threads/{1}")
        same("/threads/{0}/result")
        same("/threads/{0}/result", stepPath="2")
        same("/threads/{1}/result", outputOnly="true")
        same("/scripts/echo")
        same("/scripts/echo/versions")
        a = canonical_message(raw(emu, "/threads", pageSize=1000))["threads"]
        b = canonical_message(raw(reference, "/threads", pageSize=1000))["threads"]
        assert stable(a[-DEMO_SEEDED:]) == stable(b[-DEMO_SEEDED:])
        for path, params in (("/threads/{0}/steps/stream", {"maxChunkBytes": 65536}),
                             ("/threads/{0}/result/stream", {}), ("/threads/{1}/watch", {}),
                             ("/threads/{1}/steps/1/watch", {})):
            _, body_a = emu.stream(path.format(*mine), params=params)
            _, body_b = reference.stream(path.format(*theirs), params=params)
            ma, ea = parse_stream(body_a, "auto")
            mb, eb = parse_stream(body_b, "auto")
            assert ea is None and eb is None
            ma = [canonical_message(m, unwrap=False) for m in ma]
            mb = [canonical_message(m, unwrap=False) for m in mb]
            assert stable(ma) == stable(mb), path
            if path.endswith("result/stream"):
                data = b"".join(base64.b64decode(m["chunk"].get("data", "")) for m in ma
                                if "chunk" in m)
                assert data == emu.raw_output(mine[0])


def test_random_create_and_cancel_answer_the_thread_or_a_minimal_answer(knob):
    emu = knob("random", "--wire-seed", "11")
    seen = set()
    for _ in range(10):
        t = canonical_message(raw(emu, "/threads", "POST", {"scriptName": "nightly"}))
        assert t["threadId"].startswith("thr_")
        seen.add(("create", "status" in t))
        doc = raw(emu, f"/threads/{t['threadId']}/cancel", "POST", {})
        if doc != {}:
            c = canonical_message(doc)
            assert c["threadId"] == t["threadId"] and c["status"] == "THREAD_STATUS_CANCELLED"
        seen.add(("cancel", doc == {}))
    assert seen == {("create", True), ("create", False), ("cancel", True), ("cancel", False)}
