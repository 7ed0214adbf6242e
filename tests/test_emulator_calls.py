"""Every call of SPEC.md §2.2 over plain HTTP, in the canonical wire mode:
the fields each answers with, their spelling (camelCase, prefixed enums,
int64 as strings, zero values omitted), and the query options of
ListThreads, GetThreadResult and ListScripts. Streams, watches, errors,
flows and faults have modules of their own."""

import base64
import json
import re
import socket
import time

import pytest

from harness import (API, HTTPError, list_all, parse_stream, status_word, thread_ids,
                     wait_until)

pytestmark = pytest.mark.timeout(60)

DEMO_SCRIPTS = ["echo", "fanout", "approval", "flaky", "bigreport", "strict", "nightly"]
THREAD_STATUSES = {"THREAD_STATUS_" + s for s in
                   ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED")}
STEP_STATUSES = {"STEP_STATUS_" + s for s in
                 ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "SKIPPED",
                  "CANCELLED")}


def is_int64_string(v):
    return isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v) is not None


def check_thread_shape(t):
    """A Thread as §2.1 spells it canonically."""
    assert re.fullmatch(r"thr_[a-z0-9]+", t["threadId"]), t
    assert t["scriptName"] in DEMO_SCRIPTS
    assert isinstance(t["version"], int) and t["version"] >= 1
    assert t["status"] in THREAD_STATUSES
    assert isinstance(t["totalSteps"], int) and t["totalSteps"] > 0
    for key in ("createdAtMs", "startedAtMs", "finishedAtMs"):
        if key in t:
            assert is_int64_string(t[key]) and int(t[key]) > 0, (key, t)
    assert "createdAtMs" in t
    if "inputJson" in t:
        json.loads(t["inputJson"])
    known = {"threadId", "scriptName", "version", "status", "error", "currentStepPath",
             "currentStepName", "totalSteps", "inputJson", "metadata", "createdAtMs",
             "startedAtMs", "finishedAtMs"}
    assert set(t) <= known, set(t) - known
    # zero values are omitted, never sent empty
    for key, value in t.items():
        assert value not in ("", 0, None, {}, []), (key, t)


def check_step_shape(s):
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)*", s["stepPath"]), s
    assert s["name"] and s["primitive"]
    assert s["status"] in STEP_STATUSES
    for key in ("startedAtMs", "finishedAtMs", "durationMs"):
        if key in s:
            assert is_int64_string(s[key]), (key, s)
    if "finishedAtMs" in s:
        assert int(s["durationMs"] if "durationMs" in s else 0) == \
            int(s["finishedAtMs"]) - int(s["startedAtMs"])


@pytest.fixture(scope="module")
def echo_done(emulator):
    """A completed echo thread with a known input."""
    tid = emulator.seed("echo", count=1, input='{"message":"hello","n":[1,2,3]}')[0]
    return emulator.get(f"/threads/{tid}")


def newest(emu, script, status):
    page = emu.get("/threads", scriptNameFilter=script, statusFilter=status, pageSize=1)
    assert page["threads"], f"no {status} {script} thread"
    return page["threads"][0]


# ---- HealthCheck ----

def test_health_answers_serving_with_a_version(emulator):
    h = emulator.get("/health")
    assert h["status"] == "SERVING"
    assert isinstance(h["version"], str) and h["version"]
    if "uptimeSeconds" in h:
        assert is_int64_string(h["uptimeSeconds"])
    assert set(h) <= {"status", "version", "uptimeSeconds"}


def test_health_reports_uptime_as_an_int64_string(emulator):
    time.sleep(1.1)
    h = emulator.get("/health")
    assert is_int64_string(h["uptimeSeconds"]) and int(h["uptimeSeconds"]) >= 1


def test_responses_are_json_with_a_json_content_type(emulator):
    status, headers, body = emulator.request("GET", API + "/threads", params={"pageSize": 1})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    json.loads(body)


# ---- CreateThread, GetThread ----

def test_create_thread_returns_a_pending_thread_with_the_request_fields(emulator):
    t = emulator.post("/threads", {
        "scriptName": "echo", "version": 1, "inputJson": '{"a":1}',
        "metadata": {"team": "growth", "ticket": "T-1"}, "timeout": "30s",
        "callbackUrl": "https://example.invalid/cb", "loadEnv": True})
    check_thread_shape(t)
    assert t["status"] == "THREAD_STATUS_PENDING"
    assert t["scriptName"] == "echo"
    assert t["version"] == 1
    assert t["inputJson"] == '{"a":1}'
    assert t["metadata"] == {"team": "growth", "ticket": "T-1"}
    assert t["totalSteps"] == 2
    assert "startedAtMs" not in t and "finishedAtMs" not in t
    assert abs(int(t["createdAtMs"]) - time.time() * 1000) < 60000
    emulator.wait_status(t["threadId"], {"completed"})


def test_create_thread_without_a_version_runs_the_active_version(emulator):
    t = emulator.post("/threads", {"scriptName": "echo"})
    assert t["version"] == emulator.get("/scripts/echo")["activeVersion"] == 2
    assert "inputJson" not in t  # empty input: a zero value, omitted
    emulator.wait_status(t["threadId"], {"completed"})


def test_create_thread_accepts_version_zero_and_int64_strings(emulator):
    t0 = emulator.post("/threads", {"scriptName": "echo", "version": 0})
    t1 = emulator.post("/threads", {"scriptName": "echo", "version": "1"})
    assert t0["version"] == 2 and t1["version"] == 1
    for t in (t0, t1):
        emulator.wait_status(t["threadId"], {"completed"})


def test_get_thread_follows_the_run_to_completion(emulator):
    t = emulator.post("/threads", {"scriptName": "echo", "inputJson": '{"x":[1,2,3]}'})
    done = emulator.wait_status(t["threadId"], {"completed"})
    check_thread_shape(done)
    assert done["threadId"] == t["threadId"]
    assert done["createdAtMs"] == t["createdAtMs"]
    assert int(done["createdAtMs"]) <= int(done["startedAtMs"]) <= int(done["finishedAtMs"])
    assert "currentStepPath" not in done and "error" not in done
    assert done["inputJson"] == '{"x":[1,2,3]}'


def test_get_thread_of_a_running_thread_names_its_current_step(emulator):
    t = newest(emulator, "nightly", "running")
    check_thread_shape(t)
    got = emulator.get(f"/threads/{t['threadId']}")
    assert got["status"] == "THREAD_STATUS_RUNNING"
    assert got["currentStepPath"] == "1" and got["currentStepName"] == "extract"
    assert "startedAtMs" in got and "finishedAtMs" not in got


def test_get_thread_of_a_failed_thread_carries_its_error(emulator):
    t = newest(emulator, "strict", "failed")
    assert t["status"] == "THREAD_STATUS_FAILED"
    assert "field 'id' is required" in t["error"]
    assert "finishedAtMs" in t


def test_thread_ids_with_url_escapes_are_decoded(emulator, echo_done):
    t = echo_done
    escaped = "".join(f"%{ord(c):02X}" for c in t["threadId"])
    assert emulator.get(f"/threads/{escaped}")["threadId"] == t["threadId"]


# ---- ListThreads ----

def test_list_threads_is_newest_first_with_a_default_page_of_50(emulator):
    emulator.seed("echo", count=60)
    page = emulator.get("/threads")
    assert len(page["threads"]) == 50
    assert page["nextPageToken"]
    for t in page["threads"]:
        check_thread_shape(t)
    everything, _ = list_all(emulator, page_size=1000)
    assert thread_ids(page["threads"]) == thread_ids(everything)[:50]
    created = [int(t["createdAtMs"]) for t in everything]
    assert created == sorted(created, reverse=True)


def test_list_threads_newest_first_puts_a_new_thread_on_top(emulator):
    t = emulator.post("/threads", {"scriptName": "echo"})
    assert emulator.get("/threads", pageSize=1)["threads"][0]["threadId"] == t["threadId"]
    emulator.wait_status(t["threadId"], {"completed"})


def test_list_threads_pages_join_into_the_whole_list(emulator):
    whole, pages = list_all(emulator, page_size=1000)
    assert pages == 1
    paged, pages = list_all(emulator, page_size=7)
    assert thread_ids(paged) == thread_ids(whole)
    assert pages == (len(whole) + 6) // 7
    assert len(set(thread_ids(whole))) == len(whole)


def test_list_threads_last_page_has_no_next_token(emulator):
    failed = emulator.get("/threads", scriptNameFilter="strict", statusFilter="failed",
                          pageSize=1000)["threads"]
    n = len(failed)
    assert n >= 6
    exact = emulator.get("/threads", scriptNameFilter="strict", statusFilter="failed",
                         pageSize=n)
    assert len(exact["threads"]) == n and "nextPageToken" not in exact
    short = emulator.get("/threads", scriptNameFilter="strict", statusFilter="failed",
                         pageSize=n - 1)
    assert len(short["threads"]) == n - 1 and short["nextPageToken"]
    rest = emulator.get("/threads", scriptNameFilter="strict", statusFilter="failed",
                        pageSize=n - 1, pageToken=short["nextPageToken"])
    assert thread_ids(rest["threads"]) == thread_ids(failed)[n - 1:]
    assert "nextPageToken" not in rest


@pytest.mark.parametrize("word,spellings", [
    ("failed", ["THREAD_STATUS_FAILED", "failed", "FAILED", "Failed", "5",
                "thread_status_failed"]),
    ("cancelled", ["THREAD_STATUS_CANCELLED", "cancelled", "CANCELED", "canceled", "6"]),
    ("completed", ["THREAD_STATUS_COMPLETED", "completed", "4"]),
    ("paused", ["THREAD_STATUS_PAUSED", "paused", "3"]),
])
def test_list_threads_filters_by_status_in_any_spelling(emulator, word, spellings):
    whole, _ = list_all(emulator, page_size=1000)
    expected = [t["threadId"] for t in whole if status_word(t["status"]) == word]
    assert expected
    for spelling in spellings:
        got, _ = list_all(emulator, page_size=1000, statusFilter=spelling)
        assert thread_ids(got) == expected, spelling
        assert all(status_word(t["status"]) == word for t in got)


def test_list_threads_filters_by_script_name(emulator):
    whole, _ = list_all(emulator, page_size=1000)
    for name in DEMO_SCRIPTS:
        got, _ = list_all(emulator, page_size=1000, scriptNameFilter=name)
        assert thread_ids(got) == [t["threadId"] for t in whole if t["scriptName"] == name]
        assert got
    assert emulator.get("/threads", scriptNameFilter="no-such-script")["threads"] == []


def test_list_threads_filters_by_status_and_script_name_together(emulator):
    whole, _ = list_all(emulator, page_size=1000)
    got, pages = list_all(emulator, page_size=2, statusFilter="cancelled",
                          scriptNameFilter="fanout")
    expected = [t["threadId"] for t in whole
                if t["scriptName"] == "fanout" and t["status"] == "THREAD_STATUS_CANCELLED"]
    assert thread_ids(got) == expected and len(expected) >= 3
    assert pages == (len(expected) + 1) // 2


def test_list_threads_filter_that_matches_nothing_is_an_empty_page(emulator):
    page = emulator.get("/threads", statusFilter="pending", scriptNameFilter="strict")
    assert page["threads"] == [] and "nextPageToken" not in page


def test_list_threads_accepts_snake_case_query_names(emulator):
    camel = emulator.get("/threads", pageSize=3, statusFilter="failed",
                         scriptNameFilter="strict")
    snake = emulator.get("/threads", page_size=3, status_filter="failed",
                         script_name_filter="strict")
    assert thread_ids(camel["threads"]) == thread_ids(snake["threads"])
    assert len(snake["threads"]) == 3
    more = emulator.get("/threads", page_size=3, status_filter="failed",
                        script_name_filter="strict", page_token=snake["nextPageToken"])
    assert not set(thread_ids(more["threads"])) & set(thread_ids(snake["threads"]))


# ---- GetThreadResult ----

def test_get_result_of_a_completed_thread_has_its_output_and_steps(emulator, echo_done):
    t = echo_done
    r = emulator.get(f"/threads/{t['threadId']}/result")
    raw = emulator.raw_output(t["threadId"])
    assert r["threadId"] == t["threadId"]
    assert r["status"] == "THREAD_STATUS_COMPLETED"
    assert base64.b64decode(r["outputData"]) == raw == t["inputJson"].encode()
    assert r["outputTotalBytes"] == str(len(raw))
    assert "outputTruncated" not in r
    assert [s["stepPath"] for s in r["steps"]] == ["1", "2"]
    for s in r["steps"]:
        check_step_shape(s)
        assert s["status"] == "STEP_STATUS_COMPLETED"
    assert "stepDetails" not in r  # only with stepPath
    assert "yieldedValues" not in r and "totalYielded" not in r


def test_get_result_with_step_path_has_that_step_in_detail(emulator, echo_done):
    t = echo_done
    r = emulator.get(f"/threads/{t['threadId']}/result", stepPath="1")
    assert [s["stepPath"] for s in r["steps"]] == ["1"]
    assert len(r["stepDetails"]) == 1
    d = r["stepDetails"][0]
    check_step_shape(d)
    assert d["stepPath"] == "1" and d["name"] == "receive" and d["toolName"] == "input.read"
    assert d["inputJson"] == t["inputJson"]
    assert d["inputTotalBytes"] == str(len(t["inputJson"]))
    json.loads(d["outputJson"])
    assert d["outputTotalBytes"] == str(len(d["outputJson"]))
    assert "inputTruncated" not in d and "outputTruncated" not in d
    assert d["attempt"] == 1
    assert d["executionId"] and d["logsUrl"].startswith("https://")
    assert "pendingInput" not in d
    # the output of the thread comes along
    assert base64.b64decode(r["outputData"]) == t["inputJson"].encode()


def test_get_result_step_path_is_exact_not_a_prefix(emulator):
    t = newest(emulator, "fanout", "completed")
    r = emulator.get(f"/threads/{t['threadId']}/result", stepPath="2")
    assert [s["stepPath"] for s in r["steps"]] == ["2"]
    assert [d["stepPath"] for d in r["stepDetails"]] == ["2"]
    assert r["stepDetails"][0]["primitive"] == "iterate"
    r = emulator.get(f"/threads/{t['threadId']}/result", stepPath="2.10.1")
    assert [d["stepPath"] for d in r["stepDetails"]] == ["2.10.1"]
    assert r["stepDetails"][0]["name"] == "transform"


def test_get_result_output_only_leaves_out_the_steps(emulator, echo_done):
    t = echo_done
    r = emulator.get(f"/threads/{t['threadId']}/result", outputOnly="true")
    assert "steps" not in r and "stepDetails" not in r
    assert base64.b64decode(r["outputData"]) == t["inputJson"].encode()
    assert r["outputTotalBytes"] == str(len(t["inputJson"]))


def test_get_result_metadata_only_leaves_out_the_output_bytes(emulator, echo_done):
    t = echo_done
    r = emulator.get(f"/threads/{t['threadId']}/result", metadataOnly="true")
    assert "outputData" not in r
    assert r["outputTotalBytes"] == str(len(t["inputJson"]))
    assert [s["stepPath"] for s in r["steps"]] == ["1", "2"]


def test_get_result_query_options_take_snake_case_and_1(emulator, echo_done):
    t = echo_done
    r = emulator.get(f"/threads/{t['threadId']}/result", output_only="1", metadata_only="1")
    assert "steps" not in r and "outputData" not in r
    assert r["outputTotalBytes"] == str(len(t["inputJson"]))
    r = emulator.get(f"/threads/{t['threadId']}/result", step_path="2")
    assert [d["stepPath"] for d in r["stepDetails"]] == ["2"]


def test_get_result_of_fanout_has_its_yielded_values(emulator):
    t = newest(emulator, "fanout", "completed")
    r = emulator.get(f"/threads/{t['threadId']}/result")
    assert r["totalYielded"] == "3"
    assert len(r["yieldedValues"]) == 3
    values = [json.loads(v) for v in r["yieldedValues"]]
    assert all(isinstance(v, dict) for v in values)
    assert "yieldsTruncated" not in r
    paths = [s["stepPath"] for s in r["steps"]]
    assert paths[:4] == ["1", "2", "2.0.0", "2.0.1"]
    assert paths[-4:] == ["2.11.0", "2.11.1", "3", "4"]
    assert len(paths) == 28 == t["totalSteps"]
    assert base64.b64decode(r["outputData"]) == emulator.raw_output(t["threadId"])
    assert r["outputTotalBytes"] == "20000"


def test_get_result_past_the_unary_limit_is_a_flagged_prefix(emulator):
    t = newest(emulator, "bigreport", "completed")
    r = emulator.get(f"/threads/{t['threadId']}/result", outputOnly="true")
    raw = emulator.raw_output(t["threadId"])
    assert len(raw) == 8 << 20 == int(r["outputTotalBytes"])
    assert r["outputTruncated"] is True
    data = base64.b64decode(r["outputData"])
    assert len(data) == 4 << 20
    assert data == raw[:4 << 20]


def test_step_detail_caps_inline_payloads_at_64_kib(emulator):
    t = newest(emulator, "bigreport", "completed")
    r = emulator.get(f"/threads/{t['threadId']}/result", stepPath="2")
    d = r["stepDetails"][0]
    assert d["name"] == "render"
    assert d["outputTruncated"] is True
    assert d["outputTotalBytes"] == "200000"
    assert len(d["outputJson"].encode()) == 65536
    assert "inputTruncated" not in d


def test_get_result_of_a_failed_thread_has_no_output_and_the_failed_step(emulator):
    t = newest(emulator, "strict", "failed")
    r = emulator.get(f"/threads/{t['threadId']}/result")
    assert r["status"] == "THREAD_STATUS_FAILED"
    assert "outputData" not in r and "outputTotalBytes" not in r
    by_path = {s["stepPath"]: s for s in r["steps"]}
    assert by_path["1"]["status"] == "STEP_STATUS_COMPLETED"
    assert by_path["2"]["status"] == "STEP_STATUS_FAILED"
    assert "field 'id' is required" in by_path["2"]["error"]
    assert by_path["3"]["status"] == "STEP_STATUS_SKIPPED"


def test_get_result_of_a_paused_ask_step_shows_its_pending_input(emulator):
    t = newest(emulator, "approval", "paused")
    r = emulator.get(f"/threads/{t['threadId']}/result", stepPath="2")
    assert r["status"] == "THREAD_STATUS_PAUSED"
    assert "outputData" not in r
    d = r["stepDetails"][0]
    assert d["status"] == "STEP_STATUS_PAUSED"
    assert d["pendingInput"] == {"prompt": "Publish this draft?",
                                 "options": ["approve", "reject"], "type": "string"}


# ---- StreamThreadResult, StreamStepResult (the shape; sizes are in
# test_emulator_streams.py) ----

def test_stream_thread_result_sends_meta_then_chunks(emulator):
    t = newest(emulator, "fanout", "completed")
    status, headers, body = emulator.request("GET", API + f"/threads/{t['threadId']}/result/stream")
    assert status == 200
    assert headers.get("Transfer-Encoding") == "chunked"
    messages, error = parse_stream(body)
    assert error is None
    assert all(line.startswith(b'{"result":') for line in body.split(b"\n") if line)
    assert messages[0] == {"meta": {"threadId": t["threadId"],
                                    "status": "THREAD_STATUS_COMPLETED",
                                    "outputTotalBytes": "20000"}}
    assert all(set(m) == {"chunk"} for m in messages[1:])
    assert len(messages) == 2  # 20000 bytes fit one default chunk
    chunk = messages[1]["chunk"]
    assert "chunkIndex" not in chunk  # zero, omitted
    assert chunk["isFinal"] is True
    assert base64.b64decode(chunk["data"]) == emulator.raw_output(t["threadId"])


def test_stream_step_result_sends_every_step_in_path_order(emulator):
    t = newest(emulator, "fanout", "completed")
    r = emulator.get(f"/threads/{t['threadId']}/result")
    status, body = emulator.stream(f"/threads/{t['threadId']}/steps/stream")
    assert status == 200
    messages, error = parse_stream(body)
    assert error is None
    metas = [m["stepMeta"] for m in messages if "stepMeta" in m]
    assert [m["stepPath"] for m in metas] == [s["stepPath"] for s in r["steps"]]
    # each step: its meta, its input chunk(s), then its output chunk(s)
    i = 0
    for meta in metas:
        assert messages[i] == {"stepMeta": meta}
        assert "inputJson" not in meta and "outputJson" not in meta
        i += 1
        for part in ("STEP_PART_INPUT", "STEP_PART_OUTPUT"):
            chunk = messages[i]["stepChunk"]
            assert chunk["stepPath"] == meta["stepPath"] and chunk["part"] == part
            assert chunk["isFinal"] is True  # small parts: one chunk each
            total = meta.get("inputTotalBytes" if part == "STEP_PART_INPUT"
                             else "outputTotalBytes", "0")
            assert len(base64.b64decode(chunk.get("data", ""))) == int(total)
            i += 1
    assert i == len(messages)


def test_stream_step_result_with_step_path_sends_that_step_only(emulator, echo_done):
    t = echo_done
    status, body = emulator.stream(f"/threads/{t['threadId']}/steps/stream",
                                   params={"stepPath": "1"})
    assert status == 200
    messages, error = parse_stream(body)
    assert error is None
    assert [list(m) for m in messages] == [["stepMeta"], ["stepChunk"], ["stepChunk"]]
    meta = messages[0]["stepMeta"]
    assert meta["stepPath"] == "1" and meta["status"] == "STEP_STATUS_COMPLETED"
    assert base64.b64decode(messages[1]["stepChunk"]["data"]) == t["inputJson"].encode()


# ---- ListScripts, GetScript, ListScriptVersions ----

def check_script_shape(s):
    assert set(s) == {"name", "description", "activeVersion", "status", "createdAtMs",
                      "updatedAtMs"}, s
    assert isinstance(s["activeVersion"], int) and s["activeVersion"] >= 1
    assert is_int64_string(s["createdAtMs"]) and is_int64_string(s["updatedAtMs"])
    assert int(s["updatedAtMs"]) >= int(s["createdAtMs"])


def test_list_scripts_has_the_demo_catalog_on_one_default_page(emulator):
    page = emulator.get("/scripts")
    assert [s["name"] for s in page["scripts"]] == DEMO_SCRIPTS
    assert "nextPageToken" not in page
    for s in page["scripts"]:
        check_script_shape(s)


@pytest.mark.parametrize("size", [1, 2, 3, 6, 7])
def test_list_scripts_pages_with_tokens(emulator, size):
    names, token, pages = [], None, 0
    while True:
        params = {"pageSize": size}
        if token:
            params["pageToken"] = token
        page = emulator.get("/scripts", **params)
        pages += 1
        assert 1 <= len(page["scripts"]) <= size
        names += [s["name"] for s in page["scripts"]]
        token = page.get("nextPageToken")
        if not token:
            break
        assert len(page["scripts"]) == size
    assert names == DEMO_SCRIPTS
    assert pages == (len(DEMO_SCRIPTS) + size - 1) // size


def test_get_script_matches_its_list_entry(emulator):
    listed = {s["name"]: s for s in emulator.get("/scripts")["scripts"]}
    for name in DEMO_SCRIPTS:
        assert emulator.get(f"/scripts/{name}") == listed[name]
    echo = listed["echo"]
    assert echo["activeVersion"] == 2
    assert echo["description"] == "Returns its input as its output."


def test_list_script_versions_is_newest_first_with_the_active_one_marked(emulator):
    versions = emulator.get("/scripts/echo/versions")["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["status"] == "VERSION_STATUS_ACTIVE"
    assert versions[1]["status"] != "VERSION_STATUS_ACTIVE"
    for v in versions:
        assert set(v) == {"version", "status", "createdAtMs"}
        assert is_int64_string(v["createdAtMs"])
    one = emulator.get("/scripts/fanout/versions")["versions"]
    assert [v["version"] for v in one] == [1]
    assert one[0]["status"] == "VERSION_STATUS_ACTIVE"


# ---- the control calls ----

def test_raw_output_call_serves_the_output_bytes(emulator, echo_done):
    t = echo_done
    status, headers, body = emulator.request(
        "GET", f"/_emulator/threads/{t['threadId']}/output", auth=False)
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert int(headers["Content-Length"]) == len(body)
    assert body == t["inputJson"].encode()


def test_seed_makes_finished_threads_at_once(emulator):
    ids = emulator.seed("flaky", count=3, status="failed")
    assert len(ids) == 3 == len(set(ids))
    for tid in ids:
        t = emulator.get(f"/threads/{tid}")
        assert t["status"] == "THREAD_STATUS_FAILED" and t["scriptName"] == "flaky"
    assert thread_ids(emulator.get("/threads", pageSize=3)["threads"]) == ids[::-1]
    ids = emulator.seed("echo", count=1, status="cancelled")
    assert emulator.get(f"/threads/{ids[0]}")["status"] == "THREAD_STATUS_CANCELLED"
    ids = emulator.seed("echo", count=1, input='{"k":"v"}')
    t = emulator.get(f"/threads/{ids[0]}")
    assert t["status"] == "THREAD_STATUS_COMPLETED" and t["inputJson"] == '{"k":"v"}'
    assert emulator.raw_output(ids[0]) == b'{"k":"v"}'


def test_seed_rejects_what_it_cannot_make(emulator):
    for body in ({"script": "nope"}, {"script": "echo", "status": "running"},
                 {"script": "echo", "count": -1}, {"script": "echo", "outputBytes": -5},
                 {"script": "echo", "input": "{not json"}, {"count": 3}):
        with pytest.raises(HTTPError) as e:
            emulator.control("POST", "/seed", body)
        assert e.value.status in (400, 404), body


def test_request_log_counts_api_calls_by_name_with_org_headers(start_emulator):
    emu = start_emulator(seed=None)
    emu.reset_requests()
    emu.get("/health")
    emu.get("/threads")
    emu.get("/threads")
    status, _, _ = emu.request("GET", API + "/scripts", headers={
        "x-organization-id": "org-42", "x-organization-name": "Acme"})
    assert status == 200
    emu.request("GET", API + "/threads/thr_nope")

    def settled():
        log = emu.requests_log()
        return log if log["total"] == 5 else None

    log = wait_until(settled, what="5 logged calls")
    assert log["byCall"] == {"HealthCheck": 1, "ListThreads": 2, "ListScripts": 1,
                             "GetThread": 1}
    recent = log["recent"]
    assert [(r["call"], r["method"], r["status"]) for r in recent] == [
        ("HealthCheck", "GET", 200), ("ListThreads", "GET", 200),
        ("ListThreads", "GET", 200), ("ListScripts", "GET", 200), ("GetThread", "GET", 404)]
    assert recent[3]["orgId"] == "org-42" and recent[3]["orgName"] == "Acme"
    assert "orgId" not in recent[0]
    assert recent[4]["path"].startswith("/v1/scriptum/threads/thr_nope")
    # control calls are not API calls: not logged
    emu.control("GET", "/faults")
    assert emu.requests_log()["total"] == 5
    emu.reset_requests()
    log = emu.requests_log()
    assert log["total"] == 0 and log["byCall"] == {} and log["recent"] == []


def test_one_connection_carries_many_calls(emulator, echo_done):
    """Clients keep connections alive: unary calls, an error and a whole
    stream, one after the other on the same connection."""
    conn = emulator.connection(timeout=30)
    try:
        tid = echo_done["threadId"]
        for method, path, body, want in [
                ("GET", "/health", None, 200),
                ("GET", f"/threads/{tid}", None, 200),
                ("GET", "/threads/thr_nope", None, 404),
                ("POST", "/threads", b'{"scriptName":"nope"}', 404),
                ("GET", f"/threads/{tid}/result/stream", None, 200),
                ("GET", f"/threads/{tid}/steps/stream", None, 200),
                ("GET", "/scripts", None, 200)]:
            conn.request(method, API + path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == want, (path, data[:200])
            assert not resp.will_close, path
            if "stream" in path:
                assert parse_stream(data)[1] is None
            else:
                json.loads(data)
    finally:
        conn.close()


def test_create_takes_a_chunked_body_and_expect_100_continue(emulator):
    """libcurl sends bodies of unknown size chunked, and large ones after
    Expect: 100-continue."""
    payload = json.dumps("q" * 300000)
    body = json.dumps({"scriptName": "echo", "inputJson": payload}).encode()
    conn = emulator.connection(timeout=30)
    try:
        conn.request("POST", API + "/threads",
                     body=(body[i:i + 7000] for i in range(0, len(body), 7000)),
                     headers={"Content-Type": "application/json",
                              "Transfer-Encoding": "chunked"}, encode_chunked=True)
        resp = conn.getresponse()
        t = json.loads(resp.read())
        assert resp.status == 200 and t["inputJson"] == payload
    finally:
        conn.close()
    sock = socket.create_connection(("127.0.0.1", emulator.port), timeout=30)
    try:
        sock.sendall(f"POST {API}/threads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        interim = sock.recv(100)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    finally:
        sock.close()
    head, _, data = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    t2 = json.loads(data)
    assert t2["inputJson"] == payload and t2["threadId"] != t["threadId"]
    for tid in (t["threadId"], t2["threadId"]):
        emulator.wait_status(tid, {"completed"})
        assert emulator.raw_output(tid) == payload.encode()
