"""Runs that need a human or a retry: an ask step answered by ResumeThread,
a failing step retried by ResumeThread, a step whose error handler fails
the thread, and CancelThread on pending, running and paused threads (and
its refusal on finished ones)."""

import base64
import json
import time

import pytest

from harness import api_error, status_word

pytestmark = pytest.mark.timeout(60)

ASK = {"prompt": "Publish this draft?", "options": ["approve", "reject"], "type": "string"}


def start(emu, script, status, **body):
    t = emu.post("/threads", {"scriptName": script, **body})
    assert t["status"] == "THREAD_STATUS_PENDING"
    return emu.wait_status(t["threadId"], {status})


def step(emu, tid, path):
    return emu.get(f"/threads/{tid}/result", stepPath=path)["stepDetails"][0]


def steps(emu, tid):
    return {s["stepPath"]: s for s in emu.get(f"/threads/{tid}/result")["steps"]}


def output(emu, tid):
    r = emu.get(f"/threads/{tid}/result")
    return base64.b64decode(r.get("outputData", ""))


# ---- ask -> resume ----

def test_ask_step_pauses_the_thread_with_its_pending_input(emulator):
    t = start(emulator, "approval", "paused", inputJson='{"title":"Launch"}')
    assert t["currentStepPath"] == "2" and t["currentStepName"] == "review"
    assert "error" not in t  # paused on a question, not on an error
    d = step(emulator, t["threadId"], "2")
    assert d["status"] == "STEP_STATUS_PAUSED"
    assert d["primitive"] == "ask"
    assert d["pendingInput"] == ASK
    s = steps(emulator, t["threadId"])
    assert s["1"]["status"] == "STEP_STATUS_COMPLETED"
    assert s["3"]["status"] == "STEP_STATUS_PENDING"


@pytest.mark.parametrize("answer", ['{"value":"approve"}', '"approve"', '{"value":"reject"}',
                                    '"reject"'])
def test_resume_with_an_answer_that_fits_runs_the_thread_to_completion(emulator, answer):
    t = start(emulator, "approval", "paused", inputJson='{"title":"Launch"}')
    tid = t["threadId"]
    resumed = emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": answer})
    assert resumed["threadId"] == tid
    assert resumed["status"] == "THREAD_STATUS_RUNNING"
    done = emulator.wait_status(tid, {"completed"})
    assert "error" not in done
    assert output(emulator, tid) == b'{"title":"Launch"}'
    d = step(emulator, tid, "2")
    assert d["status"] == "STEP_STATUS_COMPLETED"
    assert "pendingInput" not in d
    assert d["outputJson"] == answer  # the answer is the ask step's output
    assert all(s["status"] == "STEP_STATUS_COMPLETED" for s in steps(emulator, tid).values())


def test_resume_accepts_a_snake_case_body(emulator):
    tid = start(emulator, "approval", "paused")["threadId"]
    emulator.post(f"/threads/{tid}/resume", {"step_input_override_json": '"approve"'})
    emulator.wait_status(tid, {"completed"})


@pytest.mark.parametrize("answer,why", [
    ('{"value":"maybe"}', "not one of the options"),
    ('"APPROVE"', "options are exact"),
    ('{"value":42}', "wrong type"),
    ("42", "wrong type"),
    ("true", "wrong type"),
    ('["approve"]', "wrong type"),
    ('{"value":', "invalid JSON"),
    ("approve", "invalid JSON: a bare word"),
    ("", "no answer"),
])
def test_resume_with_an_answer_that_does_not_fit_is_invalid_and_keeps_the_pause(
        emulator, answer, why):
    tid = start(emulator, "approval", "paused")["threadId"]
    status, err = api_error(emulator, "POST", f"/threads/{tid}/resume",
                            body={"stepInputOverrideJson": answer})
    assert (status, err["code"]) == (400, 3), (why, err)
    t = emulator.get(f"/threads/{tid}")
    assert t["status"] == "THREAD_STATUS_PAUSED" and t["currentStepPath"] == "2"
    assert step(emulator, tid, "2")["pendingInput"] == ASK
    # and a fitting answer still works afterwards
    emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
    emulator.wait_status(tid, {"completed"})


def test_resume_without_a_body_answers_nothing_and_is_invalid(emulator):
    tid = start(emulator, "approval", "paused")["threadId"]
    for body in ({}, {"stepInputOverrideJson": None}):
        status, err = api_error(emulator, "POST", f"/threads/{tid}/resume", body=body)
        assert (status, err["code"]) == (400, 3)
    assert emulator.get(f"/threads/{tid}")["status"] == "THREAD_STATUS_PAUSED"


def test_a_thread_can_be_resumed_only_once(emulator):
    tid = start(emulator, "approval", "paused")["threadId"]
    emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
    emulator.wait_status(tid, {"completed"})
    status, err = api_error(emulator, "POST", f"/threads/{tid}/resume",
                            body={"stepInputOverrideJson": '"approve"'})
    assert (status, err["code"]) == (400, 9)


# ---- flaky -> resume ----

def test_a_failing_step_without_a_handler_pauses_the_thread_with_its_error(emulator):
    t = start(emulator, "flaky", "paused", inputJson='{"id":7}')
    assert "502 Bad Gateway" in t["error"]
    assert t["currentStepPath"] == "2"
    d = step(emulator, t["threadId"], "2")
    assert d["status"] == "STEP_STATUS_FAILED"
    assert "502 Bad Gateway" in d["error"]
    assert d["attempt"] == 1
    assert "pendingInput" not in d


def test_resume_reruns_the_failed_step_and_completes(emulator):
    tid = start(emulator, "flaky", "paused", inputJson='{"id":7}')["threadId"]
    first = step(emulator, tid, "2")
    resumed = emulator.post(f"/threads/{tid}/resume", {})
    assert resumed["status"] == "THREAD_STATUS_RUNNING"
    assert "error" not in resumed
    done = emulator.wait_status(tid, {"completed"})
    assert "error" not in done
    d = step(emulator, tid, "2")
    assert d["status"] == "STEP_STATUS_COMPLETED"
    assert d["attempt"] == 2
    assert "error" not in d
    assert d["executionId"] != first["executionId"]
    assert output(emulator, tid) == b'{"id":7}'


def test_resume_of_a_failed_step_with_an_override_runs_it_on_that_input(emulator):
    tid = start(emulator, "flaky", "paused", inputJson='{"id":7}')["threadId"]
    override = '{"id":7,"retry":true}'
    emulator.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": override})
    emulator.wait_status(tid, {"completed"})
    d = step(emulator, tid, "2")
    assert d["inputJson"] == override
    assert d["attempt"] == 2
    assert output(emulator, tid) == b'{"id":7}'


def test_resume_of_a_failed_step_with_an_invalid_override_is_invalid(emulator):
    tid = start(emulator, "flaky", "paused")["threadId"]
    status, err = api_error(emulator, "POST", f"/threads/{tid}/resume",
                            body={"stepInputOverrideJson": "{broken"})
    assert (status, err["code"]) == (400, 3)
    t = emulator.get(f"/threads/{tid}")
    assert t["status"] == "THREAD_STATUS_PAUSED" and "502" in t["error"]
    assert step(emulator, tid, "2")["attempt"] == 1


# ---- on_error: fail ----

def test_a_failing_step_with_a_fail_handler_fails_the_thread(emulator):
    t = start(emulator, "strict", "failed", inputJson='{"name":"x"}')
    assert "field 'id' is required" in t["error"]
    assert "finishedAtMs" in t
    s = steps(emulator, t["threadId"])
    assert [s[p]["status"] for p in ("1", "2", "3")] == [
        "STEP_STATUS_COMPLETED", "STEP_STATUS_FAILED", "STEP_STATUS_SKIPPED"]
    r = emulator.get(f"/threads/{t['threadId']}/result")
    assert "outputData" not in r
    status, err = api_error(emulator, "POST", f"/threads/{t['threadId']}/resume", body={})
    assert (status, err["code"]) == (400, 9)


# ---- cancel ----

def check_cancelled(emu, tid):
    t = emu.get(f"/threads/{tid}")
    assert t["status"] == "THREAD_STATUS_CANCELLED"
    assert "finishedAtMs" in t
    assert "currentStepPath" not in t
    for s in steps(emu, tid).values():
        # a step that had already failed keeps its failure
        assert s["status"] in ("STEP_STATUS_COMPLETED", "STEP_STATUS_CANCELLED",
                               "STEP_STATUS_FAILED"), s
        assert s["status"] != "STEP_STATUS_FAILED" or s.get("error"), s
    status, err = api_error(emu, "POST", f"/threads/{tid}/cancel", body={})
    assert (status, err["code"]) == (400, 9)
    assert "cancelled" in err["message"]
    return t


def test_cancel_of_a_pending_thread(emulator):
    # a new thread is pending for ~30 ms: cancel at once, and retry in the
    # unlikely case that the run started first
    for attempt in range(10):
        t = emulator.post("/threads", {"scriptName": "nightly"})
        c = emulator.post(f"/threads/{t['threadId']}/cancel", {})
        assert c["status"] == "THREAD_STATUS_CANCELLED"
        check_cancelled(emulator, t["threadId"])
        if "startedAtMs" not in c:
            break
    else:
        pytest.fail("never managed to cancel a thread while it was pending")
    s = steps(emulator, t["threadId"])
    assert all(v["status"] == "STEP_STATUS_CANCELLED" for v in s.values())
    assert all("startedAtMs" not in v for v in s.values())


def test_cancel_of_a_running_thread(emulator):
    t = start(emulator, "nightly", "running")
    c = emulator.post(f"/threads/{t['threadId']}/cancel", {})
    assert c["status"] == "THREAD_STATUS_CANCELLED"
    check_cancelled(emulator, t["threadId"])
    s = steps(emulator, t["threadId"])
    assert s["1"]["status"] == "STEP_STATUS_CANCELLED" and "finishedAtMs" in s["1"]
    assert s["2"]["status"] == s["3"]["status"] == "STEP_STATUS_CANCELLED"


@pytest.mark.parametrize("script", ["approval", "flaky"])
def test_cancel_of_a_paused_thread(emulator, script):
    t = start(emulator, script, "paused")
    c = emulator.post(f"/threads/{t['threadId']}/cancel", {})
    assert c["status"] == "THREAD_STATUS_CANCELLED"
    check_cancelled(emulator, t["threadId"])
    s = steps(emulator, t["threadId"])
    assert s["1"]["status"] == "STEP_STATUS_COMPLETED"
    assert s["2"]["status"] == ("STEP_STATUS_CANCELLED" if script == "approval"
                                else "STEP_STATUS_FAILED")
    assert s["3"]["status"] == "STEP_STATUS_CANCELLED"
    status, err = api_error(emulator, "POST", f"/threads/{t['threadId']}/resume",
                            body={"stepInputOverrideJson": '"approve"'})
    assert (status, err["code"]) == (400, 9)


def test_cancel_takes_an_empty_body_or_none(emulator):
    t = start(emulator, "nightly", "running")
    status, _, body = emulator.request("POST", f"/v1/scriptum/threads/{t['threadId']}/cancel")
    assert status == 200
    assert status_word(json.loads(body)["status"]) == "cancelled"


def test_a_cancelled_thread_stays_cancelled(emulator):
    t = start(emulator, "echo", "running")
    emulator.post(f"/threads/{t['threadId']}/cancel", {})
    time.sleep(0.4)  # longer than the rest of the echo run would take
    assert emulator.get(f"/threads/{t['threadId']}")["status"] == "THREAD_STATUS_CANCELLED"
    assert output(emulator, t["threadId"]) == b""
