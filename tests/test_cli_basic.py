"""The scriptum CLI's commands against the emulator (the design in
scriptum(1)): what each prints in each output mode (table, wide, json,
yaml), compared with the emulator's own answers; the global flags and their
placement; create's flags (--input JSON|@FILE|@-, --version, --metadata);
list's paging and filters; result's exact bytes; steps in numeric path
order; help and version."""

import json
import re

import pytest
import yaml

from harness import (MiB, assert_camel_case_keys, assert_same_message, get_canonical,
                     list_all_canonical, scriptum, wait_for_status)

pytestmark = pytest.mark.timeout(90)

THREAD_ID = re.compile(r"thr_[a-z0-9]+")


def ok(res):
    """The stdout of a run that must succeed."""
    assert res.rc == 0, f"exit {res.rc}: {res.err}"
    return res.out


def json_out(res):
    return json.loads(ok(res))


def calls(emu, name):
    return emu.requests_log()["byCall"].get(name, 0)


# ---- help, version, endpoint ----

def test_version_prints_the_version_and_exits_0(emu):
    res = scriptum(emu, "--version")
    assert res.rc == 0
    assert res.out == b"scriptum 0.1.0\n"


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["help", "thread"],
                                  ["help", "thread", "watch"], ["thread", "--help"]])
def test_help_prints_usage_and_exits_0(emu, args):
    res = scriptum(emu, *args)
    assert res.rc == 0, res.err
    text = res.out.decode() + res.err
    assert "thread" in text and "usage" in text.lower()
    assert calls(emu, "HealthCheck") == 0 and emu.requests_log()["total"] == 0


def test_no_endpoint_anywhere_exits_2_naming_the_ways_to_set_one(emu):
    res = scriptum(emu, "thread", "list", endpoint=False)
    assert res.rc == 2
    assert res.out == b""
    assert "no API endpoint" in res.err
    assert "--api-endpoint" in res.err and "SCRIPTUM_API_ENDPOINT" in res.err


def test_endpoint_from_the_environment(emu):
    tid = emu.seed("echo")[0]
    res = scriptum(emu, "-o", "json", "thread", "get", tid, endpoint=False,
                   env={"SCRIPTUM_API_ENDPOINT": emu.url})
    assert json_out(res)["threadId"] == tid


def test_an_unknown_command_exits_2(emu):
    res = scriptum(emu, "thread", "frobnicate")
    assert res.rc == 2
    assert res.out == b""
    assert res.err.strip()


def test_an_unknown_flag_exits_2(emu):
    res = scriptum(emu, "thread", "list", "--no-such-flag")
    assert res.rc == 2
    assert res.err.strip()
    assert calls(emu, "ListThreads") == 0


def test_a_bad_output_mode_exits_2(emu):
    res = scriptum(emu, "-o", "xml", "thread", "list")
    assert res.rc == 2
    assert calls(emu, "ListThreads") == 0


@pytest.mark.parametrize("placement", ["before", "after", "equals", "middle"])
def test_global_flags_work_anywhere_on_the_line(emu, placement):
    tid = emu.seed("echo")[0]
    args = {"before": ["-o", "json", "thread", "get", tid],
            "after": ["thread", "get", tid, "-o", "json"],
            "equals": ["thread", "get", "--output=json", tid],
            "middle": ["thread", "--output", "json", "get", tid]}[placement]
    res = scriptum(emu, *args, f"--api-endpoint={emu.url}", endpoint=False)
    assert json_out(res)["threadId"] == tid


def test_double_dash_ends_the_flags(emu):
    res = scriptum(emu, "-o", "json", "thread", "get", "--", "-o")
    assert res.rc == 5  # "-o" is the id, which does not exist
    assert "-o" in res.err


# ---- create ----

def test_create_prints_the_thread_as_json(emu):
    res = scriptum(emu, "-o", "json", "thread", "create", "echo", "--input", '{"a":1}')
    t = json_out(res)
    assert THREAD_ID.fullmatch(t["threadId"])
    assert t["scriptName"] == "echo"
    assert t["status"] == "THREAD_STATUS_PENDING"
    assert t["inputJson"] == '{"a":1}'
    assert t["version"] == 2  # the active version
    assert_camel_case_keys(t)
    assert calls(emu, "CreateThread") == 1
    done = wait_for_status(emu, t["threadId"], {"completed"})
    assert done["createdAtMs"] == t["createdAtMs"]
    assert emu.raw_output(t["threadId"]) == b'{"a":1}'


def test_create_prints_a_one_row_table_by_default(emu):
    res = scriptum(emu, "thread", "create", "echo")
    lines = ok(res).decode().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].split() == ["ID", "SCRIPT", "VERSION", "STATUS", "STEPS", "AGE",
                                "DURATION"]
    tid = lines[1].split()[0]
    assert THREAD_ID.fullmatch(tid)
    assert "echo" in lines[1].split()
    assert get_canonical(emu, f"/threads/{tid}")["scriptName"] == "echo"


def test_create_without_input_sends_no_input(emu):
    t = json_out(scriptum(emu, "-o", "json", "thread", "create", "echo"))
    assert t.get("inputJson", "") == ""
    assert get_canonical(emu, f"/threads/{t['threadId']}").get("inputJson", "") == ""


def test_create_reads_the_input_from_a_file(emu, tmp_path):
    doc = '{\n  "from": "file",\n  "n": [1, 2.50, "x"]\n}\n'
    (tmp_path / "in.json").write_text(doc)
    t = json_out(scriptum(emu, "-o", "json", "thread", "create", "echo",
                          "--input", f"@{tmp_path / 'in.json'}"))
    wait_for_status(emu, t["threadId"], {"completed"})
    assert json.loads(emu.raw_output(t["threadId"])) == json.loads(doc)


def test_create_reads_the_input_from_stdin(emu):
    t = json_out(scriptum(emu, "-o", "json", "thread", "create", "echo", "--input", "@-",
                          input='{"from":"stdin"}'))
    wait_for_status(emu, t["threadId"], {"completed"})
    assert json.loads(emu.raw_output(t["threadId"])) == {"from": "stdin"}


def test_create_with_a_version_runs_that_version(emu):
    t = json_out(scriptum(emu, "-o", "json", "thread", "create", "echo", "--version", "1"))
    assert t["version"] == 1
    t0 = json_out(scriptum(emu, "-o", "json", "thread", "create", "echo", "--version", "0"))
    assert t0["version"] == 2


def test_create_sends_repeated_metadata(emu):
    t = json_out(scriptum(emu, "-o", "json", "thread", "create", "echo",
                          "--metadata", "team=data", "--metadata", "query=a=b",
                          "--metadata", "empty="))
    want = {"team": "data", "query": "a=b", "empty": ""}
    got = get_canonical(emu, f"/threads/{t['threadId']}")["metadata"]
    # an empty value is the map's own business; the two others must be there
    assert {k: got.get(k, "") for k in want} == want
    assert {k: t["metadata"].get(k, "") for k in want} == want


def test_metadata_without_an_equals_sign_exits_2_and_creates_nothing(emu):
    res = scriptum(emu, "thread", "create", "echo", "--metadata", "team")
    assert res.rc == 2
    assert "team" in res.err
    assert calls(emu, "CreateThread") == 0
    assert list_all_canonical(emu) == []


def test_create_of_an_unknown_script_exits_5_naming_it(emu):
    res = scriptum(emu, "thread", "create", "no-such-script")
    assert res.rc == 5
    assert "CreateThread" in res.err and "no-such-script" in res.err
    assert res.out == b""


def test_create_takes_the_runs_timeout_after_the_command(emu):
    res = scriptum(emu, "-o", "json", "thread", "create", "echo", "--timeout", "5m")
    t = json_out(res)
    assert t["scriptName"] == "echo"
    # and the per-call deadline before the command still parses
    res = scriptum(emu, "--timeout", "20s", "-o", "json", "thread", "create", "echo",
                   "--timeout", "1h30m")
    assert json_out(res)["scriptName"] == "echo"


def test_a_bad_duration_exits_2(emu):
    res = scriptum(emu, "--timeout", "5x", "thread", "list")
    assert res.rc == 2
    assert calls(emu, "ListThreads") == 0


# ---- run ----

def test_run_with_result_prints_exactly_the_output_bytes(emu):
    doc = '{"b": [1, 2.50, "\\u00e9"],   "a": {"nested": true}}'
    res = scriptum(emu, "thread", "run", "echo", "--input", doc, "--result")
    assert res.rc == 0, res.err
    assert res.out == doc.encode()


def test_run_with_result_of_a_large_output(emu, tmp_path):
    doc = json.dumps({"blob": "x" * (3 * MiB)})
    (tmp_path / "big.json").write_text(doc)
    res = scriptum(emu, "thread", "run", "echo", "--input", f"@{tmp_path / 'big.json'}",
                   "--result")
    assert res.rc == 0, res.err
    assert res.out == doc.encode()


def test_run_follows_the_thread_to_completion_and_exits_0(emu):
    res = scriptum(emu, "thread", "run", "echo", "--input", '{"r":1}')
    assert res.rc == 0, res.err
    text = res.out.decode() + res.err
    m = re.search(r"^thread (thr_[a-z0-9]+) completed in \S+$", text, re.M)
    assert m, text
    assert get_canonical(emu, f"/threads/{m.group(1)}")["status"] == "THREAD_STATUS_COMPLETED"
    assert emu.raw_output(m.group(1)) == b'{"r":1}'
    # the end is an event line: the status event, or a snapshot when the watch began late
    assert re.search(r"^\d\d:\d\d:\d\d  (status  completed|snapshot  completed.*)$",
                     res.out.decode(), re.M), res.out


def test_run_of_a_failing_script_exits_1_with_its_error(emu):
    res = scriptum(emu, "thread", "run", "strict")
    assert res.rc == 1
    text = res.out.decode() + res.err
    m = re.search(r"^thread (thr_[a-z0-9]+) failed after \S+: (.*)$", text, re.M)
    assert m, text
    assert "field 'id' is required" in m.group(2)
    assert get_canonical(emu, f"/threads/{m.group(1)}")["status"] == "THREAD_STATUS_FAILED"


def test_run_with_result_of_a_failing_script_prints_nothing_on_stdout(emu):
    res = scriptum(emu, "thread", "run", "strict", "--result")
    assert res.rc == 1
    assert res.out == b""
    assert "field 'id' is required" in res.err


def test_run_json_prints_ndjson_events_ending_completed(emu):
    res = scriptum(emu, "-o", "json", "thread", "run", "fanout")
    assert res.rc == 0, res.err
    events = [json.loads(line) for line in res.out.decode().splitlines()]
    assert events[0]["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
    assert all(e["type"].startswith("THREAD_EVENT_TYPE_") for e in events)
    assert events[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"
    if len(events) > 1:
        assert events[-1]["type"] == "THREAD_EVENT_TYPE_STATUS"
    assert len({e["thread"]["threadId"] for e in events}) == 1
    for e in events:
        assert_camel_case_keys(e)


# ---- get ----

def test_get_json_is_the_thread_the_api_gives(emu):
    tid = emu.seed("strict", status="failed", input='{"id":null}')[0]
    t = json_out(scriptum(emu, "-o", "json", "thread", "get", tid))
    assert_same_message(t, get_canonical(emu, f"/threads/{tid}"))
    assert t["status"] == "THREAD_STATUS_FAILED"
    assert "field 'id' is required" in t["error"]
    assert isinstance(t["createdAtMs"], str) and t["createdAtMs"].isdigit()


def test_get_table_is_a_key_value_detail_view(emu):
    tid = emu.seed("strict", status="failed", input='{"message":"hello"}')[0]
    out = ok(scriptum(emu, "thread", "get", tid)).decode()
    fields = {}
    for line in out.splitlines():
        m = re.match(r"^([A-Za-z][A-Za-z ]*):\s+(.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    assert fields["ID"] == tid
    assert fields["Script"] == "strict (version 1)"
    assert fields["Status"] == "failed"
    assert fields["Step"] == "2 of 3: validate"
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((.*ago|just now)\)$", fields["Created"])
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", fields["Started"])
    assert "(took " in fields["Finished"]
    assert "field 'id' is required" in fields["Error"]
    assert '{"message":"hello"}' in fields["Input"]


def test_get_wide_is_the_detail_view_too(emu):
    tid = emu.seed("echo")[0]
    out = ok(scriptum(emu, "-o", "wide", "thread", "get", tid)).decode()
    assert re.search(rf"^ID:\s+{tid}$", out, re.M)


def test_get_yaml_parses_to_the_same_data_as_json(emu):
    tid = emu.seed("strict", status="failed")[0]
    as_json = json_out(scriptum(emu, "-o", "json", "thread", "get", tid))
    as_yaml = yaml.safe_load(ok(scriptum(emu, "-o", "yaml", "thread", "get", tid)))
    assert as_yaml == as_json


def test_get_of_an_unknown_thread_exits_5_naming_it(emu):
    res = scriptum(emu, "thread", "get", "thr_doesnotexist")
    assert res.rc == 5
    assert res.out == b""
    assert "GetThread" in res.err and "thr_doesnotexist" in res.err
    assert "404" in res.err


def test_an_id_with_url_characters_is_escaped_not_injected(emu):
    emu.seed("echo")
    res = scriptum(emu, "thread", "get", "../threads?x=1#y")
    assert res.rc in (2, 5), res.err  # refused locally, or not found
    assert res.out == b""
    assert calls(emu, "ListThreads") == 0


# ---- list ----

def test_list_json_is_an_array_of_the_api_threads_newest_first(emu):
    emu.seed("echo", count=3)
    emu.seed("strict", count=2, status="failed")
    got = json_out(scriptum(emu, "-o", "json", "thread", "list"))
    assert isinstance(got, list) and len(got) == 5
    assert_same_message(got, list_all_canonical(emu))
    assert [t["scriptName"] for t in got] == ["strict"] * 2 + ["echo"] * 3


def test_list_of_nothing_is_an_empty_json_array(emu):
    res = scriptum(emu, "-o", "json", "thread", "list")
    assert json_out(res) == []


def test_list_all_returns_every_thread(emu):
    emu.seed("echo", count=120)
    res = scriptum(emu, "-o", "json", "thread", "list", "--all")
    got = json_out(res)
    want = list_all_canonical(emu)
    assert len(got) == 120
    assert [t["threadId"] for t in got] == [t["threadId"] for t in want]
    assert "more threads exist" not in res.err


def test_list_all_pages_with_the_page_size(emu):
    emu.seed("echo", count=120)
    emu.reset_requests()
    got = json_out(scriptum(emu, "-o", "json", "thread", "list", "--all", "--page-size", "25"))
    assert len(got) == 120
    assert len({t["threadId"] for t in got}) == 120
    assert calls(emu, "ListThreads") == 5


def test_list_shows_one_default_page_of_50_and_hints_at_more(emu):
    emu.seed("echo", count=120)
    res = scriptum(emu, "-o", "json", "thread", "list")
    got = json_out(res)
    assert [t["threadId"] for t in got] == \
        [t["threadId"] for t in list_all_canonical(emu)][:50]
    assert "scriptum: more threads exist: use --all or a larger --page-size" in res.err


def test_list_page_size_limits_the_page(emu):
    emu.seed("echo", count=120)
    res = scriptum(emu, "-o", "json", "thread", "list", "--page-size", "7")
    got = json_out(res)
    assert [t["threadId"] for t in got] == \
        [t["threadId"] for t in list_all_canonical(emu)][:7]
    assert "more threads exist" in res.err


def test_list_with_a_page_size_covering_everything_gives_no_hint(emu):
    emu.seed("echo", count=12)
    res = scriptum(emu, "-o", "json", "thread", "list", "--page-size", "1000")
    assert len(json_out(res)) == 12
    assert "more threads exist" not in res.err


@pytest.mark.parametrize("spelling", ["failed", "FAILED", "THREAD_STATUS_FAILED",
                                      "thread_status_failed", "Failed"])
def test_list_status_filter_in_any_spelling(emu, spelling):
    failed = set(emu.seed("strict", count=3, status="failed"))
    emu.seed("echo", count=4)
    got = json_out(scriptum(emu, "-o", "json", "thread", "list", "--status", spelling))
    assert {t["threadId"] for t in got} == failed
    assert {t["status"] for t in got} == {"THREAD_STATUS_FAILED"}


@pytest.mark.parametrize("spelling", ["cancelled", "canceled", "CANCELED"])
def test_list_status_filter_takes_canceled(emu, spelling):
    cancelled = set(emu.seed("echo", count=2, status="cancelled"))
    emu.seed("echo", count=2)
    got = json_out(scriptum(emu, "-o", "json", "thread", "list", "--status", spelling))
    assert {t["threadId"] for t in got} == cancelled


@pytest.mark.parametrize("bad", ["bogus", "done", "", "7"])
def test_list_with_a_bad_status_exits_2_and_calls_nothing(emu, bad):
    res = scriptum(emu, "-o", "json", "thread", "list", "--status", bad)
    assert res.rc == 2
    assert res.out == b""
    assert calls(emu, "ListThreads") == 0


def test_list_script_filter(emu):
    mine = set(emu.seed("fanout", count=3))
    emu.seed("echo", count=3)
    got = json_out(scriptum(emu, "-o", "json", "thread", "list", "--script", "fanout"))
    assert {t["threadId"] for t in got} == mine


def test_list_status_and_script_filters_together(emu):
    want = set(emu.seed("echo", count=2, status="cancelled"))
    emu.seed("echo", count=2)
    emu.seed("fanout", count=2, status="cancelled")
    got = json_out(scriptum(emu, "-o", "json", "thread", "list", "--script", "echo",
                            "--status", "cancelled", "--all"))
    assert {t["threadId"] for t in got} == want


def test_list_table_has_a_header_and_a_row_per_thread(emu):
    ids = emu.seed("echo", count=3) + emu.seed("strict", count=2, status="failed")
    out = ok(scriptum(emu, "thread", "list")).decode()
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SCRIPT", "VERSION", "STATUS", "STEPS", "AGE",
                                "DURATION"]
    rows = lines[1:]
    assert [r.split()[0] for r in rows] == list(reversed(ids))
    for r in rows[:2]:
        assert re.search(r"\bstrict\b", r) and re.search(r"\bfailed\b", r, re.I)
    for r in rows[2:]:
        assert re.search(r"\becho\b", r) and re.search(r"\bcompleted\b", r, re.I)
    # the columns line up: every row's STATUS starts where the header's does
    col = lines[0].index("STATUS")
    assert all(re.match(r"(completed|failed)", r[col:], re.I) for r in rows), lines


@pytest.mark.timeout(60)
def test_list_table_shows_the_step_of_a_live_thread(emu):
    tid = emu.post("/threads", {"scriptName": "approval"})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    try:
        lines = ok(scriptum(emu, "thread", "list")).decode().splitlines()
        row = [l for l in lines[1:] if l.split()[0] == tid][0]
        assert re.search(r"\bpaused\b", row, re.I)
        assert re.search(r"\b2/3\b", row), row  # STEPS: at step 2 of 3
    finally:
        emu.post(f"/threads/{tid}/cancel")


def test_list_wide_adds_current_step_created_and_error(emu):
    emu.seed("strict", status="failed")
    out = ok(scriptum(emu, "-o", "wide", "thread", "list")).decode()
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:7] == ["ID", "SCRIPT", "VERSION", "STATUS", "STEPS", "AGE", "DURATION"]
    assert header[7:] == ["CURRENT-STEP", "CREATED", "ERROR"]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", lines[1])
    assert "field 'id' is required" in lines[1]


def test_list_yaml_parses_to_the_same_data_as_json(emu):
    emu.seed("echo", count=3, input='{"k":"v"}')
    emu.seed("strict", count=2, status="failed")
    as_json = json_out(scriptum(emu, "-o", "json", "thread", "list"))
    as_yaml = yaml.safe_load(ok(scriptum(emu, "-o", "yaml", "thread", "list")))
    assert as_yaml == as_json
    assert len(as_yaml) == 5


def test_list_yaml_of_nothing_is_an_empty_sequence(emu):
    assert yaml.safe_load(ok(scriptum(emu, "-o", "yaml", "thread", "list"))) == []


# ---- result ----

@pytest.mark.parametrize("size", [1, 100, 65537, 3 * MiB + 1])
def test_result_writes_the_output_bytes_exactly(emu, size):
    tid = emu.seed("echo", outputBytes=size)[0]
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 0, res.err
    assert res.out == emu.raw_output(tid)


def test_result_of_an_empty_output_prints_nothing_and_exits_0(emu):
    tid = emu.seed("echo", outputBytes=0)[0]
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 0, res.err
    assert res.out == b""


def test_result_of_a_failed_thread_exits_1_with_its_error(emu):
    tid = emu.seed("strict", status="failed")[0]
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 1
    assert res.out == b""
    assert "field 'id' is required" in res.err


def test_result_of_a_cancelled_thread_exits_1(emu):
    tid = emu.seed("echo", status="cancelled")[0]
    res = scriptum(emu, "thread", "result", tid)
    assert res.rc == 1
    assert res.out == b""


def test_result_of_a_running_thread_exits_2_saying_how_to_follow_it(emu):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    wait_for_status(emu, tid, {"running"})
    try:
        res = scriptum(emu, "thread", "result", tid)
        assert res.rc == 2
        assert res.out == b""
        assert (f"thread {tid} is running: it has no result yet "
                f"(follow it with: scriptum thread watch {tid})") in res.err
    finally:
        emu.post(f"/threads/{tid}/cancel")


def test_result_yaml_converts_the_output(emu):
    doc = {"a": [1, 2.5, "x"], "b": {"c": None, "d": True}, "e": "12"}
    tid = emu.seed("echo", input=json.dumps(doc))[0]
    res = scriptum(emu, "-o", "yaml", "thread", "result", tid)
    assert yaml.safe_load(ok(res)) == doc


def test_result_of_an_unknown_thread_exits_5(emu):
    res = scriptum(emu, "thread", "result", "thr_nothere")
    assert res.rc == 5
    assert "thr_nothere" in res.err
    assert res.out == b""


# ---- steps ----

def test_steps_json_is_the_step_summaries_in_numeric_path_order(emu):
    tid = emu.seed("fanout")[0]
    got = json_out(scriptum(emu, "-o", "json", "thread", "steps", tid))
    want = get_canonical(emu, f"/threads/{tid}/result")["steps"]
    assert_same_message(got, want)
    paths = [s["stepPath"] for s in got]
    assert paths == sorted(paths, key=lambda p: [int(x) for x in p.split(".")])
    assert paths.index("2.9.1") < paths.index("2.10.0")


def test_steps_table_lists_every_step_in_numeric_order(emu):
    tid = emu.seed("fanout")[0]
    out = ok(scriptum(emu, "thread", "steps", tid)).decode()
    lines = out.splitlines()
    assert lines[0].split() == ["PATH", "NAME", "PRIMITIVE", "TOOL", "STATUS", "DURATION"]
    want = [s["stepPath"] for s in get_canonical(emu, f"/threads/{tid}/result")["steps"]]
    assert [l.split()[0] for l in lines[1:]] == want
    by_path = {l.split()[0]: l for l in lines[1:]}
    assert re.search(r"\btransform\b.*\bexecute\b.*\bjq\b.*\bcompleted\b", by_path["2.10.1"],
                     re.I)
    # nested steps are indented in NAME
    name_col = lines[0].index("NAME")
    assert by_path["1"][name_col:].startswith("load")
    assert by_path["2.0.0"][name_col] == " "


def test_steps_wide_adds_started_finished_error(emu):
    tid = emu.seed("strict", status="failed")[0]
    out = ok(scriptum(emu, "-o", "wide", "thread", "steps", tid)).decode()
    lines = out.splitlines()
    assert lines[0].split() == ["PATH", "NAME", "PRIMITIVE", "TOOL", "STATUS", "DURATION",
                                "STARTED", "FINISHED", "ERROR"]
    row2 = [l for l in lines[1:] if l.split()[0] == "2"][0]
    assert "field 'id' is required" in row2


def test_steps_of_one_step(emu):
    tid = emu.seed("bigreport", outputBytes=10)[0]
    got = json_out(scriptum(emu, "-o", "json", "thread", "steps", tid, "--step", "2"))
    want = [s for s in get_canonical(emu, f"/threads/{tid}/result")["steps"]
            if s["stepPath"] == "2"]
    assert_same_message(got, want)


def test_steps_of_an_unknown_step_exits_5(emu):
    tid = emu.seed("echo")[0]
    res = scriptum(emu, "thread", "steps", tid, "--step", "9.9")
    assert res.rc == 5
    assert "9.9" in res.err


def test_steps_detail_json_is_the_step_details_with_inline_payloads(emu):
    tid = emu.seed("bigreport", outputBytes=10, input='{"month":"2024-05"}')[0]
    got = json_out(scriptum(emu, "-o", "json", "thread", "steps", tid, "--detail"))
    assert [d["stepPath"] for d in got] == ["1", "2", "3"]
    for d in got:
        want = get_canonical(emu, f"/threads/{tid}/result",
                             stepPath=d["stepPath"])["stepDetails"][0]
        assert_same_message(d, want)
    two = got[1]
    assert two["outputTruncated"] is True and two["outputTotalBytes"] == "200000"
    assert len(two["outputJson"].encode()) == 65536


def test_steps_detail_table_shows_the_question_of_a_paused_ask_step(emu):
    tid = emu.post("/threads", {"scriptName": "approval"})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    try:
        out = ok(scriptum(emu, "thread", "steps", tid, "--step", "2", "--detail")).decode()
        # the block names the step (path and name), then "Key: value" lines
        assert re.search(r"^\S.*\b2\b.*\breview\b", out.splitlines()[0]), out
        fields = dict(re.findall(r"^\s*([A-Z][A-Za-z]*):\s+(.*)$", out, re.M))
        assert fields["Primitive"].split(",")[0] == "ask"
        assert fields["Status"].lower() == "paused"
        assert fields["Prompt"] == "Publish this draft?"
        assert "approve" in fields["Options"] and "reject" in fields["Options"]
        assert "string" in fields["Expects"]
    finally:
        emu.post(f"/threads/{tid}/cancel")


def test_steps_detail_table_says_when_a_payload_is_truncated(emu):
    tid = emu.seed("bigreport", outputBytes=10)[0]
    out = ok(scriptum(emu, "thread", "steps", tid, "--step", "2", "--detail")).decode()
    assert "(truncated: 65536 of 200000 bytes)" in out


def test_steps_yaml_parses_to_the_same_data_as_json(emu):
    tid = emu.seed("fanout")[0]
    as_json = json_out(scriptum(emu, "-o", "json", "thread", "steps", tid))
    as_yaml = yaml.safe_load(ok(scriptum(emu, "-o", "yaml", "thread", "steps", tid)))
    assert as_yaml == as_json


# ---- cancel ----

@pytest.mark.timeout(60)
def test_cancel_of_a_running_thread_cancels_it(emu):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    wait_for_status(emu, tid, {"running"})
    t = json_out(scriptum(emu, "-o", "json", "thread", "cancel", tid))
    assert t["threadId"] == tid
    assert t["status"] == "THREAD_STATUS_CANCELLED"
    assert get_canonical(emu, f"/threads/{tid}")["status"] == "THREAD_STATUS_CANCELLED"
    assert calls(emu, "CancelThread") == 1


def test_cancel_prints_a_one_row_table(emu):
    tid = emu.post("/threads", {"scriptName": "nightly"})["threadId"]
    out = ok(scriptum(emu, "thread", "cancel", tid)).decode()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "SCRIPT"]
    assert lines[1].split()[0] == tid
    assert re.search(r"\bcancelled\b", lines[1], re.I)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_cancel_of_a_finished_thread_exits_2_with_the_api_message(emu, status):
    script = "strict" if status == "failed" else "echo"
    tid = emu.seed(script, status=status)[0]
    res = scriptum(emu, "thread", "cancel", tid)
    assert res.rc == 2
    assert res.out == b""
    assert "CancelThread" in res.err and tid in res.err
    assert "cannot be cancelled" in res.err
    assert get_canonical(emu, f"/threads/{tid}")["status"] == \
        "THREAD_STATUS_" + status.upper()


# ---- resume ----

@pytest.mark.timeout(60)
def test_ask_pause_resume_with_the_approval_answer_completes(emu):
    res = scriptum(emu, "-o", "json", "thread", "create", "approval",
                   "--input", '{"title":"Launch"}')
    tid = json_out(res)["threadId"]
    wait_for_status(emu, tid, {"paused"})
    t = json_out(scriptum(emu, "-o", "json", "thread", "resume", tid,
                          "--input", '{"value":"approve"}'))
    assert t["threadId"] == tid
    assert t["status"] in ("THREAD_STATUS_RUNNING", "THREAD_STATUS_COMPLETED")
    wait_for_status(emu, tid, {"completed"})
    assert ok(scriptum(emu, "thread", "result", tid)) == b'{"title":"Launch"}'
    d = get_canonical(emu, f"/threads/{tid}/result", stepPath="2")["stepDetails"][0]
    assert json.loads(d["outputJson"]) == {"value": "approve"}


@pytest.mark.timeout(60)
def test_resume_with_a_wrong_answer_exits_2_and_the_thread_stays_paused(emu):
    tid = emu.post("/threads", {"scriptName": "approval"})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    try:
        res = scriptum(emu, "thread", "resume", tid, "--input", '{"value":"maybe"}')
        assert res.rc == 2
        assert res.out == b""
        assert "ResumeThread" in res.err and tid in res.err
        assert "approve, reject" in res.err  # the API's message
        assert get_canonical(emu, f"/threads/{tid}")["status"] == "THREAD_STATUS_PAUSED"
    finally:
        emu.post(f"/threads/{tid}/cancel")


def test_resume_with_invalid_json_exits_2_and_calls_nothing(emu):
    tid = emu.post("/threads", {"scriptName": "approval"})["threadId"]
    wait_for_status(emu, tid, {"paused"})
    try:
        res = scriptum(emu, "thread", "resume", tid, "--input", '{"value":approve}')
        assert res.rc == 2
        assert calls(emu, "ResumeThread") == 0
        assert get_canonical(emu, f"/threads/{tid}")["status"] == "THREAD_STATUS_PAUSED"
    finally:
        emu.post(f"/threads/{tid}/cancel")


@pytest.mark.timeout(60)
def test_resume_without_input_retries_a_step_that_failed(emu):
    tid = emu.post("/threads", {"scriptName": "flaky", "inputJson": '{"f":1}'})["threadId"]
    t = wait_for_status(emu, tid, {"paused"})
    assert "502" in t["error"]
    r = json_out(scriptum(emu, "-o", "json", "thread", "resume", tid))
    assert r["threadId"] == tid
    wait_for_status(emu, tid, {"completed"})
    assert emu.raw_output(tid) == b'{"f":1}'


def test_resume_of_a_finished_thread_exits_2(emu):
    tid = emu.seed("echo")[0]
    res = scriptum(emu, "thread", "resume", tid, "--input", '"approve"')
    assert res.rc == 2
    assert "ResumeThread" in res.err


# ---- health ----

def test_health_table(emu):
    out = ok(scriptum(emu, "health")).decode()
    lines = out.splitlines()
    assert lines[0] == "status: SERVING"
    assert lines[1] == "version: scriptum-emulator 0.1.0"
    assert re.fullmatch(r"uptime: ((\d+h)?(\d+m)?\d+s|\d+ms)", lines[2]), lines[2]


def test_health_json_is_the_api_answer(emu):
    got = json_out(scriptum(emu, "-o", "json", "health"))
    want = get_canonical(emu, "/health")
    assert got["status"] == want["status"] == "SERVING"
    assert got["version"] == want["version"]
    assert got.get("uptimeSeconds", "0").isdigit()


def test_health_yaml_parses_to_the_same_data_as_json(emu):
    as_json = json_out(scriptum(emu, "-o", "json", "health"))
    as_yaml = yaml.safe_load(ok(scriptum(emu, "-o", "yaml", "health")))
    as_json.pop("uptimeSeconds", None)
    as_yaml.pop("uptimeSeconds", None)
    assert as_yaml == as_json
