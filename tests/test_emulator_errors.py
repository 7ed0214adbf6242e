"""Every error of SPEC.md §2.5 the emulator can produce: the status, the
gRPC code and the {"code", "message", "details": []} body, mapped as
grpc-gateway maps them; and that a rejected request changes nothing."""

import json

import pytest

from harness import API, api_error, list_all, raw_request, running

pytestmark = pytest.mark.timeout(60)

# grpc-gateway's mapping of the codes the emulator uses (§2.5)
HTTP_FOR_CODE = {3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 12: 501, 13: 500, 14: 503,
                 16: 401, 4: 504}

TOKEN = "s3cret-token"


def expect(emu, method, path, status, code, **kw):
    got_status, err = api_error(emu, method, path, **kw)
    assert (got_status, err["code"]) == (status, code), err
    if code in HTTP_FOR_CODE:
        assert got_status == HTTP_FOR_CODE[code]
    return err


def fingerprint(emu):
    """The ids of every thread, newest first: enough to see that nothing
    was created."""
    threads, _ = list_all(emu, page_size=1000)
    return [t["threadId"] for t in threads]


@pytest.fixture(scope="module")
def threads(emulator):
    """Known threads of the demo emulator, by state."""
    def first(script, status):
        return emulator.get("/threads", scriptNameFilter=script, statusFilter=status,
                            pageSize=1)["threads"][0]["threadId"]

    def live(script, status):
        tid = emulator.post("/threads", {"scriptName": script})["threadId"]
        emulator.wait_status(tid, {status})
        return tid

    return {
        "completed": first("echo", "completed"),
        "failed": first("strict", "failed"),
        "cancelled": first("fanout", "cancelled"),
        "running": live("nightly", "running"),
        "paused": live("approval", "paused"),
        "paused_error": live("flaky", "paused"),
    }


# ---- 401 ----

@pytest.fixture(scope="module")
def secured(start_emulator):
    return start_emulator(token=TOKEN)


PROTECTED = [
    ("GET", "/threads", None),
    ("POST", "/threads", {"scriptName": "echo"}),
    ("GET", "/threads/{id}", None),
    ("POST", "/threads/{id}/cancel", {}),
    ("POST", "/threads/{id}/resume", {}),
    ("GET", "/threads/{id}/watch", None),
    ("GET", "/threads/{id}/steps/1/watch", None),
    ("GET", "/threads/{id}/result", None),
    ("GET", "/threads/{id}/result/stream", None),
    ("GET", "/threads/{id}/steps/stream", None),
    ("GET", "/scripts", None),
    ("GET", "/scripts/echo", None),
    ("GET", "/scripts/echo/versions", None),
]


@pytest.mark.parametrize("method,path,body", PROTECTED,
                         ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_every_call_but_health_needs_the_bearer_token(secured, method, path, body):
    tid = secured.get("/threads", statusFilter="completed", pageSize=1)["threads"][0]["threadId"]
    path = path.replace("{id}", tid)
    before = fingerprint(secured)
    err = expect(secured, method, path, 401, 16, body=body, auth=False)
    assert "token" in err["message"]
    for header in ("Bearer wrong-token", "bearer " + TOKEN, "Basic " + TOKEN, TOKEN,
                   "Bearer", "Bearer  " + TOKEN, "Bearer " + TOKEN + "x"):
        expect(secured, method, path, 401, 16, body=body, auth=False,
               headers={"Authorization": header})
    assert fingerprint(secured) == before


def test_health_needs_no_token(secured):
    status, _, body = secured.request("GET", API + "/health", auth=False)
    assert status == 200 and json.loads(body)["status"] == "SERVING"
    status, _, body = secured.request("GET", API + "/health", auth=False,
                                      headers={"Authorization": "Bearer wrong"})
    assert status == 200


def test_the_right_token_is_accepted(secured):
    assert secured.get("/threads", pageSize=1)["threads"]
    assert secured.get("/scripts/echo")["name"] == "echo"


def test_control_calls_need_no_token(secured):
    status, _, _ = secured.request("GET", "/_emulator/faults", auth=False)
    assert status == 200
    ids = secured.seed("echo", count=1)
    status, _, body = secured.request("GET", f"/_emulator/threads/{ids[0]}/output",
                                      auth=False)
    assert status == 200 and body


@pytest.mark.timeout(30)
def test_a_new_token_replaces_the_old_one_at_once():
    with running(seed=None, token="old") as emu:
        assert emu.get("/scripts")["scripts"]
        emu.control("POST", "/token", {"token": "new"})
        expect(emu, "GET", "/scripts", 401, 16)  # still sends "old"
        emu.token = "new"
        assert emu.get("/scripts")["scripts"]
        # an empty token turns auth off
        emu.control("POST", "/token", {"token": ""})
        status, _, _ = emu.request("GET", API + "/scripts", auth=False)
        assert status == 200
        emu.control("POST", "/token", {"token": "third"})
        emu.token = "third"
        assert emu.get("/scripts")["scripts"]
        expect(emu, "GET", "/scripts", 401, 16, auth=False)


# ---- 404 ----

@pytest.mark.parametrize("method,path", [
    ("GET", "/threads/thr_doesnotexist"),
    ("POST", "/threads/thr_doesnotexist/cancel"),
    ("POST", "/threads/thr_doesnotexist/resume"),
    ("GET", "/threads/thr_doesnotexist/watch"),
    ("GET", "/threads/thr_doesnotexist/steps/1/watch"),
    ("GET", "/threads/thr_doesnotexist/result"),
    ("GET", "/threads/thr_doesnotexist/result/stream"),
    ("GET", "/threads/thr_doesnotexist/steps/stream"),
])
def test_unknown_thread_is_not_found(emulator, method, path):
    before = fingerprint(emulator)
    err = expect(emulator, method, path, 404, 5, body={} if method == "POST" else None)
    assert "thr_doesnotexist" in err["message"]
    assert fingerprint(emulator) == before


@pytest.mark.parametrize("path", ["/scripts/nope", "/scripts/nope/versions"])
def test_unknown_script_is_not_found(emulator, path):
    expect(emulator, "GET", path, 404, 5)


def test_creating_a_thread_of_an_unknown_script_is_not_found(emulator):
    before = fingerprint(emulator)
    err = expect(emulator, "POST", "/threads", 404, 5, body={"scriptName": "nope"})
    assert "nope" in err["message"]
    assert fingerprint(emulator) == before


def test_creating_a_thread_of_a_version_that_does_not_exist_is_not_found(emulator):
    before = fingerprint(emulator)
    expect(emulator, "POST", "/threads", 404, 5, body={"scriptName": "echo", "version": 3})
    assert fingerprint(emulator) == before


@pytest.mark.parametrize("method,path,params", [
    ("GET", "/threads/{id}/result", {"stepPath": "9"}),
    ("GET", "/threads/{id}/result", {"stepPath": "1.0"}),
    ("GET", "/threads/{id}/steps/stream", {"stepPath": "2.1"}),
    ("GET", "/threads/{id}/steps/9/watch", None),
])
def test_unknown_step_is_not_found(emulator, threads, method, path, params):
    err = expect(emulator, method, path.replace("{id}", threads["completed"]), 404, 5,
                 params=params)
    assert "step" in err["message"]


@pytest.mark.parametrize("method,path", [
    ("GET", API + "/nope"),
    ("GET", API + "/threads/x/y"),
    ("GET", API + "/threads/x/result/y"),
    ("GET", API + "/threads/x/steps/1/watch/more"),
    ("POST", API + "/threads/x/pause"),
    ("GET", API + "/scripts/echo/versions/1"),
    ("GET", "/nope"),
    ("GET", "/v1/other/threads"),
    ("GET", "/"),
    ("GET", "/_emulator/nope"),
])
def test_unknown_route_is_not_found(emulator, method, path):
    status, _, body = emulator.request(method, path, body={} if method == "POST" else None)
    assert status == 404, body
    err = json.loads(body)
    assert err["code"] == 5 and err["message"] and err["details"] == []


def test_an_unknown_route_is_not_found_before_auth(secured):
    # unknown routes are not calls: they answer 404 with or without a token
    status, _, body = secured.request("GET", API + "/nope", auth=False)
    assert status == 404 and json.loads(body)["code"] == 5


# ---- 400 INVALID_ARGUMENT ----

@pytest.mark.parametrize("raw", [
    b"{", b"not json", b'{"scriptName": "echo"', b"[]", b'"echo"', b"42", b"null",
    b'{"scriptName": "echo"} trailing',
], ids=lambda r: r.decode())
def test_create_with_an_unparsable_body_is_invalid(emulator, raw):
    before = fingerprint(emulator)
    expect(emulator, "POST", "/threads", 400, 3, raw_body=raw,
           headers={"Content-Type": "application/json"})
    assert fingerprint(emulator) == before


@pytest.mark.parametrize("body", [
    {},
    {"scriptName": ""},
    {"scriptName": 7},
    {"scriptName": None},
    {"inputJson": "{}"},
    {"scriptName": "echo", "inputJson": "{not json"},
    {"scriptName": "echo", "inputJson": "{\"a\":1} {\"b\":2}"},
    {"scriptName": "echo", "inputJson": 42},
    {"scriptName": "echo", "inputJson": {"a": 1}},
    {"scriptName": "echo", "version": -1},
    {"scriptName": "echo", "version": "two"},
    {"scriptName": "echo", "version": 1.5},
    {"scriptName": "echo", "version": True},
    {"scriptName": "echo", "metadata": "team=growth"},
    {"scriptName": "echo", "metadata": {"n": 1}},
], ids=lambda b: json.dumps(b))
def test_create_with_a_bad_field_is_invalid_and_creates_nothing(emulator, body):
    before = fingerprint(emulator)
    expect(emulator, "POST", "/threads", 400, 3, body=body)
    assert fingerprint(emulator) == before


@pytest.mark.parametrize("params", [
    {"pageToken": "garbage"},
    {"pageToken": "p1."},
    {"pageToken": "p1.0"},
    {"pageToken": "p1.zz"},
    {"pageToken": "p1.ffffffffff"},
    {"pageToken": "p2.1"},
    {"statusFilter": "RUNNINGX"},
    {"statusFilter": "THREAD_STATUS_"},
    {"statusFilter": "0"},
    {"statusFilter": "7"},
    {"statusFilter": "unspecified"},
    {"pageSize": "-1"},
    {"pageSize": "ten"},
    {"pageSize": "5x"},
], ids=lambda p: json.dumps(p))
def test_list_threads_with_a_bad_query_is_invalid(emulator, params):
    expect(emulator, "GET", "/threads", 400, 3, params=params)


@pytest.mark.parametrize("params", [
    {"pageSize": "-1"}, {"pageSize": "x"}, {"pageToken": "garbage"}, {"pageToken": "p1.99"},
], ids=lambda p: json.dumps(p))
def test_list_scripts_with_a_bad_query_is_invalid(emulator, params):
    expect(emulator, "GET", "/scripts", 400, 3, params=params)


@pytest.mark.parametrize("path", ["/threads/{id}/result/stream", "/threads/{id}/steps/stream"])
@pytest.mark.parametrize("size", ["-1", "abc", "12k", "0x10"])
def test_stream_with_a_bad_chunk_size_is_invalid(emulator, threads, path, size):
    expect(emulator, "GET", path.replace("{id}", threads["completed"]), 400, 3,
           params={"maxChunkBytes": size})


def test_malformed_percent_escapes_are_invalid(emulator, threads):
    expect(emulator, "GET", "/threads/thr_%zz", 400, 3)
    expect(emulator, "GET", "/threads/thr_%00x", 400, 3)
    status, _, body = emulator.request("GET", API + "/threads?statusFilter=%zz")
    assert status == 400 and json.loads(body)["code"] == 3


def test_resume_with_a_bad_body_is_invalid_and_leaves_the_thread_paused(emulator, threads):
    tid = threads["paused"]
    for kw in ({"raw_body": b"{"}, {"raw_body": b"[]"},
               {"body": {"stepInputOverrideJson": 5}},
               {"body": {"stepInputOverrideJson": {"value": "approve"}}}):
        expect(emulator, "POST", f"/threads/{tid}/resume", 400, 3, **kw)
    assert emulator.get(f"/threads/{tid}")["status"] == "THREAD_STATUS_PAUSED"


def test_cancel_with_an_unparsable_body_is_invalid_and_cancels_nothing(emulator, threads):
    tid = threads["running"]
    expect(emulator, "POST", f"/threads/{tid}/cancel", 400, 3, raw_body=b"{oops")
    assert emulator.get(f"/threads/{tid}")["status"] == "THREAD_STATUS_RUNNING"


# ---- 400 FAILED_PRECONDITION ----

@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_cancel_of_a_finished_thread_is_a_failed_precondition(emulator, threads, state):
    tid = threads[state]
    before = emulator.get(f"/threads/{tid}")
    err = expect(emulator, "POST", f"/threads/{tid}/cancel", 400, 9, body={})
    assert state in err["message"]
    assert emulator.get(f"/threads/{tid}") == before


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled", "running"])
def test_resume_of_a_thread_that_is_not_paused_is_a_failed_precondition(emulator, threads,
                                                                        state):
    tid = threads[state]
    before = emulator.get(f"/threads/{tid}")["status"]
    err = expect(emulator, "POST", f"/threads/{tid}/resume", 400, 9,
                 body={"stepInputOverrideJson": '{"value":"approve"}'})
    assert "paused" in err["message"]
    assert emulator.get(f"/threads/{tid}")["status"] == before


@pytest.mark.parametrize("state", ["running", "paused", "paused_error"])
def test_streaming_the_result_of_an_unfinished_thread_is_a_failed_precondition(
        emulator, threads, state):
    expect(emulator, "GET", f"/threads/{threads[state]}/result/stream", 400, 9)


# ---- 501 ----

@pytest.mark.parametrize("method,path", [
    ("POST", "/health"),
    ("POST", "/threads/{id}"),
    ("GET", "/threads/{id}/cancel"),
    ("GET", "/threads/{id}/resume"),
    ("POST", "/threads/{id}/watch"),
    ("POST", "/threads/{id}/result"),
    ("POST", "/threads/{id}/result/stream"),
    ("POST", "/scripts"),
    ("POST", "/scripts/echo"),
    ("PUT", "/threads"),
    ("DELETE", "/threads/{id}"),
    ("PATCH", "/scripts/echo"),
    ("PUT", "/health"),
    ("DELETE", "/threads/{id}/cancel"),
])
def test_wrong_method_on_an_existing_path_is_unimplemented(emulator, threads, method, path):
    tid = threads["running"]
    before = fingerprint(emulator)
    expect(emulator, method, path.replace("{id}", tid), 501, 12,
           body={} if method != "GET" else None)
    assert fingerprint(emulator) == before


# ---- 413 ----

@pytest.mark.timeout(120)
def test_a_body_over_80_mib_is_too_large_and_creates_nothing(start_emulator):
    emu = start_emulator(seed=None)
    padding = "x" * ((80 << 20) + 1024)
    body = json.dumps({"scriptName": "echo", "inputJson": json.dumps(padding)}).encode()
    status, _, data = emu.request("POST", API + "/threads", raw_body=body,
                                  headers={"Content-Type": "application/json"}, timeout=120)
    assert status == 413, data[:200]
    err = json.loads(data)
    assert isinstance(err["code"], int) and err["message"] and err["details"] == []
    assert emu.get("/threads")["threads"] == []
    # a large body under the limit is taken
    ok = json.dumps({"scriptName": "echo", "inputJson": json.dumps("y" * (8 << 20))}).encode()
    status, _, data = emu.request("POST", API + "/threads", raw_body=ok,
                                  headers={"Content-Type": "application/json"}, timeout=120)
    assert status == 200, data[:200]
    assert len(emu.get("/threads")["threads"]) == 1


# ---- names that are not UTF-8, or long: an error, never a crash ----

def answer_and_survive(emu, status, body, allowed):
    """The answer is a JSON error with one of the allowed (status, code)
    pairs, and the emulator still serves afterwards."""
    assert status is not None, "the emulator closed the connection without an answer"
    err = json.loads(body)
    assert (status, err["code"]) in allowed, (status, err)
    assert err["message"] and err["details"] == []
    assert emu.get("/health")["status"] == "SERVING"


NOT_FOUND_OR_INVALID = {(404, 5), (400, 3)}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("path,params", [
    ("/threads/%FF", None),
    ("/threads/%C3", None),
    ("/threads/%FF/result", None),
    ("/threads/%FF/watch", None),
    ("/threads/%FF/result/stream", None),
    ("/scripts/%FF", None),
    ("/scripts/%FF/versions", None),
    ("/threads", {"statusFilter": b"\xff"}),
    ("/threads", {"pageToken": b"\xff"}),
    ("/scripts", {"pageToken": b"\xfe"}),
], ids=lambda v: repr(v))
def test_a_name_that_is_not_utf8_is_an_error_not_a_crash(path, params):
    with running(seed=None) as emu:
        status, _, body = emu.request("GET", API + path, params=params)
        answer_and_survive(emu, status, body, NOT_FOUND_OR_INVALID)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("query", [b"stepPath=%FF", b"stepPath=%C3%A9%C3"])
def test_a_step_path_that_is_not_utf8_is_an_error_not_a_crash(query):
    with running(seed=None) as emu:
        tid = emu.seed("echo", count=1)[0]
        for target in (f"{API}/threads/{tid}/result?".encode() + query,
                       f"{API}/threads/{tid}/steps/stream?".encode() + query,
                       f"{API}/threads/{tid}/steps/%FF/watch".encode()):
            status, body = raw_request(emu, "GET", target)
            answer_and_survive(emu, status, body, NOT_FOUND_OR_INVALID)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("target", [
    b"/v1/scriptum/nope\xff", b"/v1/scriptum/threads/x/y\xfe", b"/nope\xff",
    b"/_emulator/nope\xff", b"/_emulator/threads/thr_\xff/output"])
def test_an_unknown_route_with_raw_bytes_that_are_not_utf8_is_not_found(target):
    with running(seed=None) as emu:
        status, body = raw_request(emu, "GET", target)
        answer_and_survive(emu, status, body, NOT_FOUND_OR_INVALID)


@pytest.mark.timeout(30)
def test_a_long_utf8_thread_id_is_not_found_not_a_crash():
    # the message quoting the id is cut to fit its buffer: never inside a
    # character
    with running(seed=None) as emu:
        for n in (255, 300, 301):
            status, _, body = emu.request("GET", API + "/threads/" + "%C3%A9" * n)
            answer_and_survive(emu, status, body, {(404, 5)})


@pytest.mark.timeout(30)
def test_creating_a_thread_of_a_long_utf8_script_name_is_not_found_not_a_crash():
    with running(seed=None) as emu:
        for n in (250, 300, 301):
            status, _, body = emu.request("POST", API + "/threads",
                                          body={"scriptName": "\u00e9" * n})
            answer_and_survive(emu, status, body, {(404, 5)})
        assert emu.get("/threads")["threads"] == []


@pytest.mark.timeout(30)
def test_seeding_a_long_utf8_script_name_is_not_found_not_a_crash():
    with running(seed=None) as emu:
        status, _, body = emu.request("POST", "/_emulator/seed",
                                      body={"script": "\u00e9" * 300}, auth=False)
        answer_and_survive(emu, status, body, {(404, 5)})
