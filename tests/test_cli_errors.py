"""Failures and how the CLI reports them (scriptum(1), EXIT STATUS): bad
input refused before any call (and no thread created), auth failures,
unknown threads, each API error class to its exit status, retries through
503 bursts and latency, deadlines, an unreachable server, error bodies that
are not JSON; every message on stderr names the call and the thread, and
never holds the token."""

import json
import re
import socket
import threading
import time

import pytest

from harness import (CLIProcess, MiB, assert_same_message, file_sha256, get_canonical, list_all_canonical, raw_output_sha256,
                     scriptum, wait_for_status)

pytestmark = pytest.mark.timeout(90)

TOKEN = "s3cret-test-token"


@pytest.fixture
def authed(new_emulator):
    """An emulator that wants a bearer token."""
    return new_emulator(seed=None, token=TOKEN)


def calls(emu, name):
    return emu.requests_log()["byCall"].get(name, 0)


def statuses(emu, call):
    return [e["status"] for e in emu.requests_log()["recent"] if e["call"] == call]


# ---- invalid input: exit 2, nothing created ----

@pytest.mark.parametrize("bad,offset", [
    ('{"a":1,}', (7, 8)),
    ('{bad json', (1, 2)),
    ('{"a": 1} trailing', (9, 10)),
    ("[1, 2", None),  # cut short: the end is the place
    ("{'single': 1}", (1, 2)),
    ('{"a": NaN}', (6, 7)),
])
def test_create_with_invalid_json_input_exits_2_and_creates_nothing(emu, bad, offset):
    emu.seed("echo", count=2)
    before = len(list_all_canonical(emu))
    emu.reset_requests()
    res = scriptum(emu, "thread", "create", "echo", "--input", bad)
    assert res.rc == 2
    assert res.out == b""
    assert re.search(r"\bJSON\b", res.err, re.I), res.err
    if offset is not None:
        nums = {int(n) for n in re.findall(r"\d+", res.err)}
        assert nums & set(offset), f"no byte offset {offset} in {res.err!r}"
    assert calls(emu, "CreateThread") == 0
    assert len(list_all_canonical(emu)) == before


def test_run_with_invalid_json_input_exits_2_and_creates_nothing(emu):
    res = scriptum(emu, "thread", "run", "echo", "--input", '{"x":}')
    assert res.rc == 2
    assert calls(emu, "CreateThread") == 0
    assert list_all_canonical(emu) == []


def test_input_from_a_missing_file_exits_2_naming_it(emu, tmp_path):
    missing = tmp_path / "no-such-input.json"
    res = scriptum(emu, "thread", "create", "echo", "--input", f"@{missing}")
    assert res.rc == 2
    assert "no-such-input.json" in res.err
    assert calls(emu, "CreateThread") == 0
    assert list_all_canonical(emu) == []


def test_input_from_a_file_holding_invalid_json_exits_2(emu, tmp_path):
    (tmp_path / "bad.json").write_text('{"a":\n  [1, 2,\n}')
    res = scriptum(emu, "thread", "run", "echo", "--input", f"@{tmp_path / 'bad.json'}")
    assert res.rc == 2
    assert calls(emu, "CreateThread") == 0


def test_invalid_json_from_stdin_exits_2(emu):
    res = scriptum(emu, "thread", "create", "echo", "--input", "@-", input="not json")
    assert res.rc == 2
    assert calls(emu, "CreateThread") == 0
    assert list_all_canonical(emu) == []


def test_input_with_invalid_utf8_exits_2(emu, tmp_path):
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    res = scriptum(emu, "thread", "create", "echo", "--input", f"@{tmp_path / 'latin1.json'}")
    assert res.rc == 2
    assert calls(emu, "CreateThread") == 0


@pytest.mark.parametrize("args", [
    ["thread", "create"],                      # no script
    ["thread", "get"],                         # no id
    ["thread", "get", "a", "b"],               # too many
    ["thread", "create", "echo", "--version", "x"],
    ["thread", "list", "--page-size", "abc"],
    ["thread", "steps"],
    ["thread", "create", "echo", "--input"],  # flag without its value
])
def test_bad_usage_exits_2_and_calls_nothing(emu, args):
    res = scriptum(emu, *args)
    assert res.rc == 2, (res.rc, res.err)
    assert res.out == b""
    assert res.err.strip()
    assert emu.requests_log()["total"] == 0


# ---- auth ----

@pytest.mark.parametrize("args,call", [
    (["thread", "list"], "ListThreads"),
    (["thread", "get", "thr_whatever"], "GetThread"),
    (["thread", "create", "echo"], "CreateThread"),
])
def test_no_token_exits_3_naming_the_call(authed, args, call):
    res = scriptum(authed, *args, token=None)
    assert res.rc == 3
    assert res.out == b""
    assert call in res.err
    assert "401" in res.err or "UNAUTHENTICATED" in res.err


def test_a_wrong_token_exits_3_and_is_not_shown(authed):
    res = scriptum(authed, "thread", "list", token="wrong-token-value")
    assert res.rc == 3
    assert "ListThreads" in res.err
    assert "wrong-token-value" not in res.err
    assert TOKEN not in res.err


def test_the_right_token_from_the_environment_works(authed):
    tid = authed.seed("echo")[0]
    res = scriptum(authed, "-o", "json", "thread", "get", tid)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["threadId"] == tid


def test_dodil_token_is_read_too(authed):
    tid = authed.seed("echo")[0]
    res = scriptum(authed, "-o", "json", "thread", "get", tid, token=None,
                   env={"DODIL_TOKEN": TOKEN})
    assert res.rc == 0, res.err


def test_a_token_file_is_read(authed, tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    res = scriptum(authed, "thread", "list", "--token-file", str(f), token=None)
    assert res.rc == 0, res.err


def test_health_works_without_a_token(authed):
    res = scriptum(authed, "-o", "json", "health", token=None)
    assert res.rc == 0, res.err
    doc = json.loads(res.out)
    assert doc["status"] == "SERVING"
    assert doc["version"] == "scriptum-emulator 0.1.0"
    log = authed.requests_log()["recent"]
    assert [e["status"] for e in log if e["call"] == "HealthCheck"] == [200]


def test_an_unknown_thread_exits_5_naming_the_thread(authed):
    res = scriptum(authed, "thread", "get", "thr_unknown42")
    assert res.rc == 5
    assert res.out == b""
    assert "thr_unknown42" in res.err
    assert "GetThread" in res.err
    assert re.search(r"404|NOT_FOUND", res.err)
    assert TOKEN not in res.err


@pytest.mark.parametrize("command", ["get", "steps", "cancel", "result", "watch"])
def test_every_command_on_an_unknown_thread_exits_5(emu, command):
    args = ["thread", command, "thr_gone"]
    res = scriptum(emu, *args, timeout=30)
    assert res.rc == 5, (res.rc, res.err)
    assert "thr_gone" in res.err
    assert res.err.startswith("scriptum: "), res.err


def test_resume_of_an_unknown_thread_exits_5(emu):
    res = scriptum(emu, "thread", "resume", "thr_gone", "--input", '"approve"')
    assert res.rc == 5
    assert "ResumeThread" in res.err and "thr_gone" in res.err


# ---- each error class ----

@pytest.mark.parametrize("status,rc", [(400, 2), (401, 3), (403, 4), (404, 5), (409, 6),
                                       (429, 7), (504, 8), (503, 9), (500, 10), (502, 9)])
def test_api_errors_map_to_their_exit_status(emu, status, rc):
    tid = emu.seed("echo")[0]
    emu.faults(errorRate=1, errorStatus=status, match=f"/threads/{tid}")
    res = scriptum(emu, "thread", "get", tid, timeout=60)
    assert res.rc == rc, (res.rc, res.err)
    assert res.out == b""
    assert "GetThread" in res.err and tid in res.err
    assert str(status) in res.err
    assert not re.fullmatch(r"\s*(scriptum: )?error\s*", res.err)


@pytest.mark.parametrize("status,rc", [(503, 9), (404, 5), (401, 3), (502, 9)])
def test_error_bodies_that_are_not_json_map_by_status(emu, status, rc):
    tid = emu.seed("echo")[0]
    emu.faults(errorRate=1, errorStatus=status, errorBody="text", match=f"/threads/{tid}")
    res = scriptum(emu, "thread", "get", tid, timeout=60)
    assert res.rc == rc, (res.rc, res.err)
    assert "GetThread" in res.err
    assert "<html" not in res.err.lower()  # a short excerpt at most, not the page


# ---- retries ----

@pytest.mark.parametrize("count", [1, 4])
def test_a_503_burst_is_retried_and_the_call_succeeds(emu, count):
    tid = emu.seed("strict", status="failed")[0]
    emu.reset_requests()
    emu.faults(errorCount=count, errorStatus=503, match=f"/threads/{tid}")
    res = scriptum(emu, "-o", "json", "thread", "get", tid)
    assert res.rc == 0, res.err
    emu.clear_faults()
    assert_same_message(json.loads(res.out), get_canonical(emu, f"/threads/{tid}"))
    assert statuses(emu, "GetThread")[:count + 1] == [503] * count + [200]


def test_a_429_burst_is_retried(emu):
    emu.seed("echo", count=3)
    emu.reset_requests()
    emu.faults(errorCount=2, errorStatus=429)
    res = scriptum(emu, "-o", "json", "thread", "list")
    assert res.rc == 0, res.err
    assert len(json.loads(res.out)) == 3
    assert statuses(emu, "ListThreads") == [429, 429, 200]


def test_a_503_burst_on_the_result_stream_is_retried(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=3 * MiB + 1)[0]
    emu.faults(errorCount=3, errorStatus=503, match="/result/stream")
    d = tmp_path / "save"
    res = scriptum(emu, "thread", "result", tid, "--save", str(d))
    assert res.rc == 0, res.err
    assert file_sha256(d / "output.json") == raw_output_sha256(emu, tid)
    assert statuses(emu, "StreamThreadResult") == [503, 503, 503, 200]


def test_a_503_burst_on_create_is_retried_once_and_creates_one_thread(emu):
    emu.faults(errorCount=2, errorStatus=503, match="/threads")
    res = scriptum(emu, "-o", "json", "thread", "create", "echo", "--input", '{"once":1}')
    assert res.rc == 0, res.err
    emu.clear_faults()
    threads = list_all_canonical(emu)
    assert len(threads) == 1
    assert threads[0]["threadId"] == json.loads(res.out)["threadId"]


def test_a_run_through_503_bursts_completes(emu):
    emu.faults(errorRate=0.3, errorStatus=503)
    res = scriptum(emu, "thread", "run", "echo", "--input", '{"burst":true}', "--result",
                   timeout=80)
    emu.clear_faults()
    assert res.rc == 0, res.err
    assert res.out == b'{"burst":true}'


def test_latency_is_waited_out(emu):
    tid = emu.seed("echo", outputBytes=1000)[0]
    emu.faults(latencyMs=700)
    t0 = time.monotonic()
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 0, res.err
    assert time.monotonic() - t0 >= 0.7
    emu.clear_faults()
    assert res.out == emu.raw_output(tid)


def test_latency_with_a_save(emu, tmp_path):
    tid = emu.seed("bigreport", outputBytes=5000)[0]
    emu.faults(latencyMs=300)
    d = tmp_path / "save"
    res = scriptum(emu, "thread", "result", tid, "--save", str(d))
    assert res.rc == 0, res.err
    emu.clear_faults()
    assert (d / "output.json").read_bytes() == emu.raw_output(tid)


def test_503_for_ever_exits_9_within_the_deadline(emu):
    tid = emu.seed("echo")[0]
    emu.faults(errorRate=1, errorStatus=503)
    t0 = time.monotonic()
    res = scriptum(emu, "--timeout", "3s", "thread", "get", tid, timeout=30)
    took = time.monotonic() - t0
    assert res.rc == 9, res.err
    assert took < 10, took
    assert "GetThread" in res.err and tid in res.err
    assert len(statuses(emu, "GetThread")) >= 2  # it did retry


# ---- deadlines and connections ----

def test_a_slow_answer_past_the_deadline_exits_8(emu):
    tid = emu.seed("echo")[0]
    emu.faults(latencyMs=5000, match=f"/threads/{tid}")
    t0 = time.monotonic()
    res = scriptum(emu, "--timeout", "1s", "thread", "get", tid, timeout=30)
    took = time.monotonic() - t0
    assert res.rc == 8, res.err
    assert took < 4.5, took
    assert "GetThread" in res.err


def test_call_timeout_is_the_deadline_anywhere_on_the_line(emu):
    tid = emu.seed("echo")[0]
    emu.faults(latencyMs=5000, match=f"/threads/{tid}")
    t0 = time.monotonic()
    res = scriptum(emu, "thread", "get", tid, "--call-timeout", "1s", timeout=30)
    assert res.rc == 8, res.err
    assert time.monotonic() - t0 < 4.5


def test_no_server_exits_9(emu):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t0 = time.monotonic()
    res = scriptum(emu, "--timeout", "3s", "thread", "list",
                   endpoint=f"http://127.0.0.1:{port}", timeout=30)
    assert res.rc == 9, res.err
    assert time.monotonic() - t0 < 10
    assert "ListThreads" in res.err


def test_a_stalled_result_stream_fails_and_leaves_no_output_json(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=2 * MiB)[0]
    emu.faults(stallAfterBytes=100000, stallMs=120000, match="/result/stream")
    d = tmp_path / "save"
    t0 = time.monotonic()
    res = scriptum(emu, "--timeout", "3s", "thread", "result", tid, "--save", str(d),
                   timeout=60)
    emu.clear_faults()  # ends the stall
    assert res.rc in (8, 9), (res.rc, res.err)
    assert time.monotonic() - t0 < 40
    assert not (d / "output.json").exists()
    assert "StreamThreadResult" in res.err and tid in res.err


# ---- the transfer-rate floor ----

FLOOR = ("--min-rate", "64KiB", "--min-rate-window", "2s")
BELOW = re.compile(r"the transfer fell below 65536 bytes/s \((\d+) bytes in the last 2 s\)")


@pytest.mark.timeout(60)
def test_a_trickling_result_stream_fails_within_the_floors_window_exit_8(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=2 * MiB)[0]
    emu.faults(trickleAfterBytes=100000, trickleMs=100, match="/result/stream")
    d = tmp_path / "save"
    t0 = time.monotonic()
    try:
        res = scriptum(emu, *FLOOR, "thread", "result", tid, "--save", str(d), timeout=30)
    finally:
        emu.clear_faults()
    took = time.monotonic() - t0
    assert res.rc == 8, (res.rc, res.err)
    assert took < 15, f"a trickle took {took:.1f} s to fail"
    m = BELOW.search(res.err)
    assert m, res.err
    assert int(m.group(1)) < 65536 * 2  # the bytes it saw are named, and few
    assert f"StreamThreadResult {tid}" in res.err
    assert not (d / "output.json").exists()


@pytest.mark.timeout(60)
def test_the_floor_from_the_environment_applies_and_0_turns_it_off(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=2 * MiB)[0]
    emu.faults(trickleAfterBytes=100000, trickleMs=100, match="/result/stream")
    try:
        res = scriptum(emu, "thread", "result", tid, "--save", str(tmp_path / "a"), timeout=30,
                       env={"SCRIPTUM_MIN_RATE": "65536", "SCRIPTUM_MIN_RATE_WINDOW": "2s"})
        assert res.rc == 8 and BELOW.search(res.err), (res.rc, res.err)
        # off: a trickle of 3 s (then the fault goes) is waited out
        timer = threading.Timer(3.0, emu.clear_faults)
        timer.start()
        t0 = time.monotonic()
        res = scriptum(emu, "--min-rate", "0", "--min-rate-window", "1s", "thread", "result",
                       tid, "--save", str(tmp_path / "b"), timeout=30,
                       env={"SCRIPTUM_MIN_RATE": "65536"})
        timer.join()
    finally:
        emu.clear_faults()
    assert res.rc == 0, res.err
    assert time.monotonic() - t0 >= 2.5
    assert file_sha256(tmp_path / "b" / "output.json") == raw_output_sha256(emu, tid)


@pytest.mark.timeout(120)
def test_a_large_save_with_a_floor_set_succeeds(emu, tmp_path):
    tid = emu.seed("echo", outputBytes=16 * MiB)[0]
    res = scriptum(emu, *FLOOR, "thread", "result", tid, "--save", str(tmp_path), timeout=100)
    assert res.rc == 0, res.err
    assert file_sha256(tmp_path / "output.json") == raw_output_sha256(emu, tid)


@pytest.mark.timeout(60)
def test_a_watch_idle_between_events_is_not_cut_by_the_floor(emu):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    wait_for_status(emu, tid, {"running"})
    w = CLIProcess(emu, "--min-rate", "1MiB", "--min-rate-window", "1s", "thread", "watch", tid)
    try:
        w.wait_for_line(lambda l: l.strip() != "", timeout=15, what="the first event")
        time.sleep(5)  # five windows with no byte at all
        assert w.proc.poll() is None, w.stderr_text()
        # a call is logged as it ends: the one watch is still open (the
        # CLI would fall back to polling GetThread, quietly, were it cut)
        assert calls(emu, "WatchThread") == 0, emu.requests_log()
        assert "fell below" not in w.stderr_text()
    finally:
        w.kill()
        emu.post(f"/threads/{tid}/cancel", {})


# ---- cancel of finished threads, resume with a wrong answer ----

def test_cancel_of_a_finished_thread_exits_2(emu):
    tid = emu.seed("echo")[0]
    res = scriptum(emu, "thread", "cancel", tid)
    assert res.rc == 2
    assert "CancelThread" in res.err and tid in res.err
    assert re.search(r"400|FAILED_PRECONDITION", res.err)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("answer", ['{"value":"maybe"}', '"APPROVE"', '{"value":42}'])
def test_resume_with_an_answer_that_does_not_fit_exits_2_still_paused(emu, answer):
    tid = emu.post("/threads", {"scriptName": "approval"})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    try:
        res = scriptum(emu, "thread", "resume", tid, "--input", answer)
        assert res.rc == 2
        assert "ResumeThread" in res.err and tid in res.err
        assert get_canonical(emu, f"/threads/{tid}")["status"] == "THREAD_STATUS_PAUSED"
    finally:
        emu.post(f"/threads/{tid}/cancel")
