"""POST /_emulator/faults: each fault does what it says and only where it
is told to (latency, error rate and status, a burst of N errors, a body
that is not JSON, Retry-After, a stream cut, ended by an error item, or
stalled or trickled, listings that page for ever or repeat ids, a path match), clearing restores normal service, and the control
calls are never faulted. Each test has an emulator of its own."""

import base64
import http.client
import json
import socket
import time

import pytest

from harness import (API, HTTPError, StreamClosed, chunks_bytes, parse_stream, raw_stream,
                     running, thread_ids)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def emu():
    with running(seed=None) as e:
        yield e


@pytest.fixture
def big(emu):
    """A completed thread with a 1 MiB + 1 output, and its bytes."""
    tid = emu.seed("echo", count=1, outputBytes=(1 << 20) + 1)[0]
    return tid, emu.raw_output(tid)


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    out = fn(*a, **kw)
    return out, time.monotonic() - t0


# ---- the control call itself ----

def test_faults_are_shown_as_set_and_cleared_by_an_empty_body(emu):
    assert emu.control("GET", "/faults") == {}
    body = {"latencyMs": 10, "errorRate": 0.5, "errorStatus": 502, "match": "/threads"}
    assert emu.faults(**body) == body
    assert emu.control("GET", "/faults") == body
    emu.clear_faults()
    assert emu.control("GET", "/faults") == {}
    emu.faults(latencyMs=5)
    emu.faults()  # {} clears too
    assert emu.control("GET", "/faults") == {}


@pytest.mark.parametrize("body", [
    {"noSuchFault": 1}, {"errorRate": 2}, {"errorRate": -0.1}, {"errorRate": "all"},
    {"errorStatus": 200}, {"errorStatus": 600}, {"errorBody": "xml"}, {"latencyMs": -1},
    {"match": 5}, {"cutAfterBytes": -1}, {"retryAfter": "soon"},
    {"pageTokenRepeat": 1}, {"emptyPagesForever": "yes"}, {"duplicateIds": 0},
], ids=lambda b: json.dumps(b))
def test_a_fault_that_makes_no_sense_is_refused(emu, body):
    emu.faults(latencyMs=1)
    with pytest.raises(HTTPError) as e:
        emu.control("POST", "/faults", body)
    assert e.value.status == 400
    err = e.value.json()
    assert err["code"] == 3 and err["message"]
    # and the faults in force are left as they were
    assert emu.control("GET", "/faults") == {"latencyMs": 1}


def test_faults_body_that_is_not_json_is_refused(emu):
    status, _, body = emu.request("POST", "/_emulator/faults", raw_body=b"{nope",
                                  auth=False)
    assert status == 400 and json.loads(body)["code"] == 3


# ---- latency ----

def test_latency_is_added_to_every_api_call(emu, big):
    emu.faults(latencyMs=400)
    for path in ("/health", "/threads", f"/threads/{big[0]}"):
        _, took = timed(emu.get, path)
        assert took >= 0.38, (path, took)
    (status, body), took = timed(emu.stream, f"/threads/{big[0]}/result/stream")
    assert status == 200 and took >= 0.38
    assert chunks_bytes(parse_stream(body)[0]) == big[1]


def test_latency_does_not_apply_to_control_calls(emu):
    emu.faults(latencyMs=3000)
    _, took = timed(emu.control, "GET", "/faults")
    assert took < 2.5
    _, took = timed(emu.seed, "echo", 1)
    assert took < 2.5
    emu.clear_faults()
    _, took = timed(emu.get, "/health")
    assert took < 2.5


# ---- error rate, status, Retry-After ----

def test_error_rate_1_fails_every_call_with_the_status_and_retry_after(emu, big):
    tid = big[0]
    before = emu.get("/threads")["threads"]
    emu.faults(errorRate=1, errorStatus=503, retryAfter=7)
    calls = [("GET", "/health", None), ("GET", "/threads", None),
             ("POST", "/threads", {"scriptName": "echo"}), ("GET", f"/threads/{tid}", None),
             ("GET", f"/threads/{tid}/result", None),
             ("GET", f"/threads/{tid}/result/stream", None),
             ("GET", f"/threads/{tid}/steps/stream", None),
             ("GET", f"/threads/{tid}/watch", None), ("GET", "/scripts", None),
             ("POST", f"/threads/{tid}/cancel", {})]
    for method, path, body in calls * 3:
        status, headers, data = emu.request(method, API + path, body=body)
        assert status == 503, (method, path)
        assert headers.get("Retry-After") == "7"
        err = json.loads(data)
        assert err["code"] == 14 and err["message"] and err["details"] == []
    emu.clear_faults()
    # nothing happened behind the errors
    assert emu.get("/threads")["threads"] == before


@pytest.mark.parametrize("status,code", [
    (400, 3), (401, 16), (403, 7), (404, 5), (409, 6), (429, 8), (500, 13), (501, 12),
    (502, 14), (503, 14), (504, 4)])
def test_injected_errors_carry_the_grpc_code_of_their_status(emu, status, code):
    emu.faults(errorRate=1, errorStatus=status)
    got, headers, data = emu.request("GET", API + "/threads")
    assert got == status
    assert "Retry-After" not in headers
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(data)["code"] == code


def test_error_status_defaults_to_503(emu):
    emu.faults(errorRate=1)
    status, _, data = emu.request("GET", API + "/scripts")
    assert status == 503 and json.loads(data)["code"] == 14


def test_error_rate_between_0_and_1_fails_some_calls(emu):
    emu.faults(errorRate=0.5, errorStatus=500)
    statuses = [emu.request("GET", API + "/health")[0] for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 40 <= statuses.count(500) <= 160


def test_error_rate_0_fails_nothing(emu):
    emu.faults(errorRate=0, errorStatus=500)
    assert all(emu.request("GET", API + "/health")[0] == 200 for _ in range(50))


def test_error_count_is_a_burst_of_exactly_n_errors_then_success(emu):
    emu.faults(errorCount=3, errorStatus=429, retryAfter=2)
    results = [emu.request("GET", API + "/threads") for _ in range(6)]
    assert [r[0] for r in results] == [429, 429, 429, 200, 200, 200]
    assert all(r[1].get("Retry-After") == "2" for r in results[:3])
    assert json.loads(results[0][2])["code"] == 8


def test_error_count_zero_means_no_errors(emu):
    emu.faults(errorCount=0)
    assert emu.request("GET", API + "/threads")[0] == 200


def test_text_error_body_is_not_json(emu):
    emu.faults(errorRate=1, errorStatus=502, errorBody="text")
    status, headers, data = emu.request("GET", API + "/threads")
    assert status == 502
    assert not headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(data)
    assert b"<html" in data.lower()
    emu.faults(errorRate=1, errorStatus=502, errorBody="json")
    status, _, data = emu.request("GET", API + "/threads")
    assert status == 502 and json.loads(data)["code"] == 14


def test_faulted_calls_are_logged_with_their_status(emu):
    emu.reset_requests()
    emu.faults(errorCount=2, errorStatus=500)
    for _ in range(3):
        emu.request("GET", API + "/scripts")
    deadline = time.monotonic() + 10
    while emu.requests_log()["total"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    recent = emu.requests_log()["recent"]
    assert [(r["call"], r["status"]) for r in recent] == [
        ("ListScripts", 500), ("ListScripts", 500), ("ListScripts", 200)]


# ---- match ----

def test_match_limits_faults_to_matching_paths(emu, big):
    tid = big[0]
    emu.faults(errorRate=1, errorStatus=500, match="/result/stream")
    status, _ = emu.stream(f"/threads/{tid}/result/stream")
    assert status == 500
    assert emu.get(f"/threads/{tid}")["threadId"] == tid
    assert "outputData" in emu.get(f"/threads/{tid}/result")
    assert emu.stream(f"/threads/{tid}/steps/stream")[0] == 200
    emu.faults(latencyMs=400, match="/scripts")
    _, took = timed(emu.get, "/scripts")
    assert took >= 0.38
    emu.faults(errorRate=1, match="/scripts")
    assert emu.request("GET", API + "/health")[0] == 200
    assert emu.request("GET", API + "/scripts/echo")[0] == 503


def test_match_is_against_the_path_under_v1_scriptum(emu):
    emu.faults(errorRate=1, errorStatus=500, match="/health")
    assert emu.request("GET", API + "/health")[0] == 500
    assert emu.request("GET", API + "/threads")[0] == 200
    emu.faults(errorRate=1, errorStatus=500, match="/v1/scriptum/health")
    # the full path is not what is matched
    assert emu.request("GET", API + "/health")[0] == 200


# ---- clearing ----

def test_clearing_the_faults_restores_normal_service(emu, big):
    emu.faults(errorRate=1, errorStatus=503, latencyMs=100, cutAfterBytes=10)
    assert emu.request("GET", API + "/threads")[0] == 503
    emu.clear_faults()
    assert emu.request("GET", API + "/threads")[0] == 200
    status, body = emu.stream(f"/threads/{big[0]}/result/stream")
    assert status == 200
    assert chunks_bytes(parse_stream(body)[0]) == big[1]


def test_faults_never_apply_to_control_calls(emu, big):
    emu.faults(errorRate=1, errorStatus=500, cutAfterBytes=10, latencyMs=50)
    assert emu.raw_output(big[0]) == big[1]
    assert len(emu.seed("echo", count=2)) == 2
    assert emu.requests_log()["total"] >= 0
    assert emu.control("GET", "/faults")["errorRate"] == 1
    emu.reset_requests()


# ---- stream faults ----

def test_cut_after_bytes_leaves_the_chunked_body_incomplete(emu, big):
    emu.faults(cutAfterBytes=5000)
    with pytest.raises(http.client.IncompleteRead):
        emu.stream(f"/threads/{big[0]}/result/stream")
    with raw_stream(emu, f"/threads/{big[0]}/result/stream") as s:
        assert s.status == 200
        with pytest.raises(StreamClosed):
            s.read_all()
        assert s.received == 5000
        assert not s.complete


def test_cut_after_bytes_applies_to_watches_too(emu):
    tid = emu.post("/threads", {"scriptName": "fanout"})["threadId"]
    emu.faults(cutAfterBytes=700, match="/watch")
    with raw_stream(emu, f"/threads/{tid}/watch") as s:
        with pytest.raises(StreamClosed):
            s.read_all()
        assert s.received == 700
    emu.clear_faults()
    emu.wait_status(tid, {"completed"})


def test_cut_after_bytes_does_not_touch_unary_calls(emu, big):
    emu.faults(cutAfterBytes=10)
    r = emu.get(f"/threads/{big[0]}/result")
    assert base64.b64decode(r["outputData"]) == big[1]


def test_error_after_bytes_ends_the_stream_with_an_error_item(emu, big):
    emu.faults(errorAfterBytes=100000)
    with raw_stream(emu, f"/threads/{big[0]}/result/stream",
                    params={"maxChunkBytes": 65536}) as s:
        assert s.status == 200
        body = s.read_all()
        assert s.complete  # a clean end, after the error item
    lines = [json.loads(l) for l in body.split(b"\n") if l]
    assert list(lines[-1]) == ["error"]
    err = lines[-1]["error"]
    assert err["code"] == 14 and err["message"] and err["details"] == []
    messages, error = parse_stream(body)
    assert error == err
    assert "meta" in messages[0]
    chunks = [m["chunk"] for m in messages[1:]]
    assert len(chunks) >= 1
    assert not any(c.get("isFinal") for c in chunks)  # an error, not a short success
    got = b"".join(base64.b64decode(c["data"]) for c in chunks)
    assert got == big[1][:len(got)]
    # the error came at the first message boundary past 100000 bytes
    sizes = [len(l) + 1 for l in body.split(b"\n")[:-1]]
    assert sum(sizes[:-2]) < 100000 <= sum(sizes[:-1])


def test_error_after_bytes_in_a_step_stream_and_a_watch(emu):
    tid = emu.seed("fanout", count=1)[0]
    emu.faults(errorAfterBytes=2000)
    status, body = emu.stream(f"/threads/{tid}/steps/stream")
    assert status == 200
    messages, error = parse_stream(body)
    assert error and error["code"] == 14
    assert messages and "stepMeta" in messages[0]
    live = emu.post("/threads", {"scriptName": "fanout"})["threadId"]
    status, body = emu.stream(f"/threads/{live}/watch")
    messages, error = parse_stream(body)
    assert error and error["code"] == 14
    assert messages[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    emu.clear_faults()
    emu.wait_status(live, {"completed"})


@pytest.mark.timeout(60)
def test_stall_pauses_a_stream_mid_way_then_it_completes(emu, big):
    emu.faults(stallAfterBytes=3000, stallMs=2000)
    with raw_stream(emu, f"/threads/{big[0]}/result/stream",
                    params={"maxChunkBytes": 65536}) as s:
        assert s.status == 200
        head = bytearray()
        while len(head) < 3000:
            head += s.read_some()
        assert len(head) == 3000  # it stops exactly there
        t0 = time.monotonic()
        with pytest.raises((socket.timeout, TimeoutError)):
            s.read_some(timeout=0.3)
        rest = s.read_all()
        assert time.monotonic() - t0 >= 0.5  # generous: most of the 2 s stall
    messages, error = parse_stream(bytes(head) + rest)
    assert error is None
    assert chunks_bytes(messages) == big[1]


@pytest.mark.timeout(60)
def test_a_stall_ends_early_when_the_faults_are_cleared(emu, big):
    emu.faults(stallAfterBytes=1000, stallMs=120000)
    with raw_stream(emu, f"/threads/{big[0]}/result/stream") as s:
        head = bytearray()
        while len(head) < 1000:
            head += s.read_some()
        assert s.idle(0.5)
        emu.clear_faults()
        rest = s.read_all()
    messages, _ = parse_stream(bytes(head) + rest)
    assert chunks_bytes(messages) == big[1]


@pytest.mark.timeout(60)
def test_trickle_sends_one_byte_per_interval_then_clearing_ends_it(emu, big):
    emu.faults(trickleAfterBytes=2000, trickleMs=100)
    with raw_stream(emu, f"/threads/{big[0]}/result/stream") as s:
        head = bytearray()
        while len(head) < 2000:
            head += s.read_some()
        assert len(head) == 2000  # full speed up to there
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            try:
                head += s.read_some(timeout=0.3)
            except (socket.timeout, TimeoutError):
                pass
        # about ten bytes in a second: a trickle, neither a stall nor a flood
        assert 2003 <= len(head) <= 2000 + 20
        emu.clear_faults()
        rest = s.read_all()
    messages, error = parse_stream(bytes(head) + rest)
    assert error is None
    assert chunks_bytes(messages) == big[1]


def test_stream_faults_with_a_match_spare_other_streams(emu, big):
    tid = big[0]
    emu.faults(cutAfterBytes=100, match="/steps/stream")
    status, body = emu.stream(f"/threads/{tid}/result/stream")
    assert status == 200 and chunks_bytes(parse_stream(body)[0]) == big[1]
    with pytest.raises(http.client.IncompleteRead):
        emu.stream(f"/threads/{tid}/steps/stream")


# ---- listings that never end, or repeat ids ----

@pytest.mark.parametrize("path,key", [("/threads", "threads"), ("/scripts", "scripts")])
def test_page_token_repeat_answers_the_same_token_for_ever(emu, path, key):
    emu.seed("echo", count=3)
    emu.faults(pageTokenRepeat=True)
    first = emu.get(path, pageSize=1)
    token = first["nextPageToken"]
    assert token and len(first[key]) == 1
    for _ in range(5):
        page = emu.get(path, pageSize=1, pageToken=token)
        assert page["nextPageToken"] == token
        assert page[key] == first[key]


@pytest.mark.parametrize("path,key", [("/threads", "threads"), ("/scripts", "scripts")])
def test_empty_pages_forever_gives_a_new_token_and_no_entries_each_time(emu, path, key):
    emu.seed("echo", count=3)
    emu.faults(emptyPagesForever=True)
    first = emu.get(path, pageSize=1)
    assert len(first[key]) == 1
    seen = {first["nextPageToken"]}
    token = first["nextPageToken"]
    for _ in range(20):
        page = emu.get(path, pageSize=1, pageToken=token)
        assert not page.get(key)
        token = page["nextPageToken"]
        assert token and token not in seen
        seen.add(token)


def test_duplicate_ids_repeat_within_a_page_and_across_pages_and_still_end(emu):
    ids = emu.seed("echo", count=7)[::-1]
    emu.faults(duplicateIds=True)
    pages, token = [], None
    for _ in range(20):
        page = emu.get("/threads", pageSize=3, **({"pageToken": token} if token else {}))
        pages.append([t["threadId"] for t in page["threads"]])
        token = page.get("nextPageToken")
        if not token:
            break
    assert not token, "the listing did not end"
    assert pages[0] == ids[0:3] + ids[0:1]
    assert pages[1] == ids[2:3] + ids[3:6] + ids[3:4]
    assert pages[2] == ids[5:6] + ids[6:7] + ids[6:7]
    emu.clear_faults()
    assert thread_ids(emu.get("/threads", pageSize=3)["threads"]) == ids[0:3]


def test_duplicate_ids_in_scripts(emu):
    names = [s["name"] for s in emu.get("/scripts", pageSize=1000)["scripts"]]
    emu.faults(duplicateIds=True)
    first = emu.get("/scripts", pageSize=2)
    assert [s["name"] for s in first["scripts"]] == names[0:2] + names[0:1]
    second = emu.get("/scripts", pageSize=2, pageToken=first["nextPageToken"])
    assert [s["name"] for s in second["scripts"]] == names[1:2] + names[2:4] + names[2:3]
