"""An emulator started on a catalog of its own (--seed FILE.yaml, SPEC.md
§6): its scripts and versions are served, its seeds and starts made, and
what the demo catalog cannot show is checked here: more yielded values than
GetThreadResult carries inline (yieldsTruncated), a script with no output,
and ask steps typed number, boolean and object."""

import base64
import json
import textwrap

import pytest

from harness import api_error, parse_stream, raw_stream

pytestmark = pytest.mark.timeout(60)

CATALOG = textwrap.dedent("""\
    scripts:
      - name: chatty
        description: Yields more values than a result carries inline.
        steps:
          - {name: talk, primitive: yield, yields: 150, duration_ms: 20}
        output: none
      - name: pick
        description: Asks three typed questions.
        versions: 3
        active_version: 2
        steps:
          - {name: count, primitive: ask, prompt: How many?, type: number}
          - {name: confirm, primitive: ask, prompt: Sure?, type: boolean}
          - {name: shape, primitive: ask, prompt: Details?, type: object}
        output: echo
      - name: nested
        steps:
          - name: outer
            primitive: iterate
            count: 2
            steps:
              - name: inner
                primitive: iterate
                count: 2
                steps:
                  - {name: leaf, primitive: execute, tool: noop, duration_ms: 5}
        output_bytes: 100
    seed:
      - {script: chatty, count: 2, status: completed}
      - {script: nested, count: 1, status: completed}
    start:
      - {script: pick, count: 1, input: '{"p":1}'}
    """)


@pytest.fixture(scope="module")
def emu(start_emulator, tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(CATALOG)
    return start_emulator(seed=str(path))


def test_the_catalogs_scripts_and_versions_are_served(emu):
    assert [s["name"] for s in emu.get("/scripts")["scripts"]] == ["chatty", "pick", "nested"]
    pick = emu.get("/scripts/pick")
    assert pick["activeVersion"] == 2 and pick["description"] == "Asks three typed questions."
    versions = emu.get("/scripts/pick/versions")["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["version"] for v in versions if v["status"] == "VERSION_STATUS_ACTIVE"] == [2]
    assert api_error(emu, "GET", "/scripts/echo")[0] == 404  # no demo scripts


def test_the_catalogs_seeds_and_starts_are_made(emu):
    threads = emu.get("/threads")["threads"]
    assert [t["scriptName"] for t in threads] == ["pick", "nested", "chatty", "chatty"]
    assert threads[0]["version"] == 2 and threads[0]["inputJson"] == '{"p":1}'


def test_yields_past_100_are_counted_and_flagged_truncated(emu):
    tid = emu.get("/threads", scriptNameFilter="chatty", pageSize=1)["threads"][0]["threadId"]
    r = emu.get(f"/threads/{tid}/result")
    assert r["totalYielded"] == "150"
    assert r["yieldsTruncated"] is True
    assert len(r["yieldedValues"]) == 100
    for v in r["yieldedValues"]:
        json.loads(v)


def test_a_script_with_no_output_has_none(emu):
    tid = emu.get("/threads", scriptNameFilter="chatty", pageSize=1)["threads"][0]["threadId"]
    r = emu.get(f"/threads/{tid}/result")
    assert r["status"] == "THREAD_STATUS_COMPLETED"
    assert "outputData" not in r and "outputTotalBytes" not in r
    assert "outputTruncated" not in r
    status, body = emu.stream(f"/threads/{tid}/result/stream")
    messages, error = parse_stream(body)
    assert error is None
    assert messages == [{"meta": {"threadId": tid, "status": "THREAD_STATUS_COMPLETED"}},
                        {"chunk": {"isFinal": True}}]
    assert emu.raw_output(tid) == b""


def test_a_live_run_yields_each_value_as_an_event(emu):
    tid = emu.post("/threads", {"scriptName": "chatty"})["threadId"]
    events = []
    with raw_stream(emu, f"/threads/{tid}/watch") as s:
        while (m := s.next_message(timeout=30)) is not None:
            events.append(m)
    yields = [e["yieldedJson"] for e in events if e["type"] == "THREAD_EVENT_TYPE_YIELD"]
    assert len(yields) == 150
    assert len(set(yields)) == 150
    r = emu.get(f"/threads/{tid}/result")
    assert yields[:100] == r["yieldedValues"]
    assert events[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"


def test_nested_iterations_have_nested_paths_in_order(emu):
    tid = emu.get("/threads", scriptNameFilter="nested")["threads"][0]["threadId"]
    paths = [s["stepPath"] for s in emu.get(f"/threads/{tid}/result")["steps"]]
    assert paths[0] == "1"
    leaves = [p for p in paths if p.count(".") == 4]
    assert len(leaves) == 4
    assert leaves == sorted(leaves)
    status, body = emu.stream(f"/threads/{tid}/steps/stream")
    metas = [m["stepMeta"]["stepPath"] for m in parse_stream(body)[0] if "stepMeta" in m]
    assert metas == paths
    r = emu.get(f"/threads/{tid}/result")
    assert len(base64.b64decode(r["outputData"])) == 100


def resume(emu, tid, answer):
    return emu.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": answer})


def bad_answer(emu, tid, answer):
    status, err = api_error(emu, "POST", f"/threads/{tid}/resume",
                            body={"stepInputOverrideJson": answer})
    assert (status, err["code"]) == (400, 3), (answer, err)


def paused_at(emu, tid, path):
    t = emu.wait_status(tid, {"paused"})
    assert t["currentStepPath"] == path
    return emu.get(f"/threads/{tid}/result", stepPath=path)["stepDetails"][0]["pendingInput"]


def test_typed_ask_steps_take_only_answers_of_their_type(emu):
    tid = emu.get("/threads", scriptNameFilter="pick")["threads"][0]["threadId"]
    assert paused_at(emu, tid, "1") == {"prompt": "How many?", "type": "number"}
    for answer in ('"3"', "true", '{"value":"3"}', "[3]"):
        bad_answer(emu, tid, answer)
    resume(emu, tid, "3")
    assert paused_at(emu, tid, "2") == {"prompt": "Sure?", "type": "boolean"}
    for answer in ("1", '"true"', "null"):
        bad_answer(emu, tid, answer)
    resume(emu, tid, '{"value":false}')
    assert paused_at(emu, tid, "3") == {"prompt": "Details?", "type": "object"}
    for answer in ('"x"', "[1]", "7"):
        bad_answer(emu, tid, answer)
    resume(emu, tid, '{"size":"L","qty":2}')
    emu.wait_status(tid, {"completed"})
    assert emu.raw_output(tid) == b'{"p":1}'
    details = {p: emu.get(f"/threads/{tid}/result", stepPath=p)["stepDetails"][0]
               for p in ("1", "2", "3")}
    assert [details[p]["outputJson"] for p in ("1", "2", "3")] == [
        "3", '{"value":false}', '{"size":"L","qty":2}']


def test_a_number_ask_step_takes_a_value_wrapper_too(emu):
    tid = emu.post("/threads", {"scriptName": "pick", "version": 3})["threadId"]
    paused_at(emu, tid, "1")
    resume(emu, tid, '{"value":2.5}')
    paused_at(emu, tid, "2")
    assert emu.get(f"/threads/{tid}")["version"] == 3
    emu.post(f"/threads/{tid}/cancel", {})
