"""StreamThreadResult and StreamStepResult byte for byte (SPEC.md §2.4):
outputs of awkward sizes against the raw bytes of
/_emulator/threads/{id}/output, with the default chunk size, with small and
clamped ones, up to 64 MiB; a step's 200000-byte output against its
StepDetail; and the unary limit of GetThreadResult (§2.3)."""

import base64
import json

import pytest

from harness import (API, MiB, chunks_bytes, parse_stream, raw_stream, running,
                     status_word)

pytestmark = pytest.mark.timeout(120)

SIZES = [0, 1, 2, 23, 24, 100, 65535, 65536, 65537, 3 * MiB + 1]
KIB64 = 64 << 10


@pytest.fixture(scope="module")
def emu(start_emulator):
    return start_emulator(seed=None)


@pytest.fixture(scope="module")
def seeded(emu):
    """A completed thread per size, with its raw output."""
    out = {}
    for size in SIZES:
        tid = emu.seed("echo", count=1, outputBytes=size)[0]
        raw = emu.raw_output(tid)
        assert len(raw) == size
        out[size] = (tid, raw)
    return out


def stream_result(emu, tid, chunk=None, timeout=120):
    params = {"maxChunkBytes": chunk} if chunk is not None else None
    status, body = emu.stream(f"/threads/{tid}/result/stream", params=params, timeout=timeout)
    assert status == 200, body[:300]
    messages, error = parse_stream(body)
    assert error is None, error
    return messages


def chunk_sizes(messages, key="chunk"):
    return [len(base64.b64decode(m[key].get("data", ""))) for m in messages if key in m]


def check_result_stream(emu, tid, raw, chunk, effective):
    messages = stream_result(emu, tid, chunk)
    meta = messages[0]["meta"]
    assert meta["threadId"] == tid
    assert meta["status"] == "THREAD_STATUS_COMPLETED"
    if raw:
        assert meta["outputTotalBytes"] == str(len(raw))
    else:
        assert "outputTotalBytes" not in meta  # zero, omitted
    assert all(set(m) == {"chunk"} for m in messages[1:])
    assert chunks_bytes(messages) == raw
    sizes = chunk_sizes(messages)
    assert all(n == effective for n in sizes[:-1]), sizes
    assert 0 < sizes[-1] <= effective or (not raw and sizes == [0])
    assert len(sizes) == max(1, -(-len(raw) // effective))
    return messages


@pytest.mark.parametrize("size", SIZES)
def test_stream_thread_result_is_byte_exact_with_the_default_chunk_size(emu, seeded, size):
    tid, raw = seeded[size]
    check_result_stream(emu, tid, raw, None, 2 * MiB)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunk,effective", [(KIB64, KIB64), (1, KIB64), (100000, 100000)],
                         ids=["64KiB", "1-clamped-to-64KiB", "100000"])
def test_stream_thread_result_is_byte_exact_in_small_chunks(emu, seeded, size, chunk,
                                                             effective):
    tid, raw = seeded[size]
    check_result_stream(emu, tid, raw, chunk, effective)


def test_empty_output_is_one_final_chunk_with_no_data(emu, seeded):
    tid, _ = seeded[0]
    messages = stream_result(emu, tid)
    assert messages[1:] == [{"chunk": {"isFinal": True}}]


def test_chunk_zero_omits_its_index_and_later_chunks_count_up(emu, seeded):
    tid, raw = seeded[65537]
    messages = stream_result(emu, tid, KIB64)
    chunks = [m["chunk"] for m in messages[1:]]
    assert "chunkIndex" not in chunks[0] and "isFinal" not in chunks[0]
    assert chunks[1]["chunkIndex"] == 1 and chunks[1]["isFinal"] is True
    assert base64.b64decode(chunks[1]["data"]) == raw[-1:]


def test_stream_lines_are_ndjson_with_a_result_wrapper(emu, seeded):
    tid, _ = seeded[65537]
    status, headers, body = emu.request("GET", API + f"/threads/{tid}/result/stream",
                                        params={"maxChunkBytes": KIB64})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers.get("Transfer-Encoding") == "chunked"
    assert body.endswith(b"\n")
    lines = body.split(b"\n")[:-1]
    assert len(lines) == 3
    for line in lines:
        item = json.loads(line)
        assert list(item) == ["result"]


def test_stream_chunk_size_takes_its_snake_case_name(emu, seeded):
    tid, raw = seeded[3 * MiB + 1]
    status, body = emu.stream(f"/threads/{tid}/result/stream",
                              params={"max_chunk_bytes": 1 << 20})
    messages, _ = parse_stream(body)
    assert chunk_sizes(messages) == [MiB, MiB, MiB, 1]
    assert chunks_bytes(messages) == raw


def test_generated_outputs_are_deterministic_json(emu, seeded):
    for size, (tid, raw) in seeded.items():
        assert emu.raw_output(tid) == raw
        if size:
            json.loads(raw)


def test_stream_can_be_read_while_it_is_sent(emu, seeded):
    """Reading message by message, as a client that consumes a stream as it
    arrives does, gives the same bytes."""
    tid, raw = seeded[3 * MiB + 1]
    out = bytearray()
    with raw_stream(emu, f"/threads/{tid}/result/stream",
                    params={"maxChunkBytes": 100000}) as s:
        assert s.status == 200 and s.chunked
        meta = s.next_message()
        assert meta["meta"]["outputTotalBytes"] == str(len(raw))
        while True:
            m = s.next_message()
            if m is None:
                break
            out += base64.b64decode(m["chunk"].get("data", ""))
        assert s.complete
    assert bytes(out) == raw


@pytest.mark.timeout(180)
def test_a_64_mib_output_streams_byte_exact(emu):
    tid = emu.seed("echo", count=1, outputBytes=64 * MiB)[0]
    raw = emu.raw_output(tid)
    assert len(raw) == 64 * MiB
    messages = check_result_stream(emu, tid, raw, None, 2 * MiB)
    assert len(messages) == 1 + 32
    r = emu.get(f"/threads/{tid}/result", outputOnly="true")
    assert r["outputTruncated"] is True and r["outputTotalBytes"] == str(64 * MiB)
    assert base64.b64decode(r["outputData"]) == raw[:4 * MiB]


@pytest.mark.timeout(180)
def test_chunk_size_is_clamped_to_16_mib(emu):
    size = 17 * MiB
    tid = emu.seed("echo", count=1, outputBytes=size)[0]
    raw = emu.raw_output(tid)
    messages = stream_result(emu, tid, 1 << 30)
    assert chunk_sizes(messages) == [16 * MiB, MiB]
    assert chunks_bytes(messages) == raw


def test_a_live_bigreport_produces_its_64_mib_output(emu):
    t = emu.post("/threads", {"scriptName": "bigreport"})
    emu.wait_status(t["threadId"], {"completed"})
    r = emu.get(f"/threads/{t['threadId']}/result", metadataOnly="true")
    assert r["outputTotalBytes"] == str(64 * MiB)
    assert r["outputTruncated"] is True
    assert "outputData" not in r


@pytest.mark.timeout(120)
def test_a_large_input_is_echoed_byte_exact(emu):
    payload = json.dumps({"blob": "z" * (5 * MiB), "tail": [1, 2, 3]})
    t = emu.post("/threads", {"scriptName": "echo", "inputJson": payload})
    emu.wait_status(t["threadId"], {"completed"})
    raw = emu.raw_output(t["threadId"])
    assert raw == payload.encode()
    messages = stream_result(emu, t["threadId"], MiB)
    assert chunks_bytes(messages) == raw
    assert emu.get(f"/threads/{t['threadId']}")["inputJson"] == payload


def test_a_cancelled_thread_streams_an_empty_output(emu):
    tid = emu.seed("echo", count=1, status="cancelled")[0]
    messages = stream_result(emu, tid)
    assert status_word(messages[0]["meta"]["status"]) == "cancelled"
    assert messages[1:] == [{"chunk": {"isFinal": True}}]
    assert emu.raw_output(tid) == b""


# ---- the unary limit ----

@pytest.mark.parametrize("size,truncated", [
    (3 * MiB + 1, False), (4 * MiB, False), (4 * MiB + 1, True)])
def test_get_result_carries_at_most_4_mib_by_default(emu, size, truncated):
    tid = emu.seed("echo", count=1, outputBytes=size)[0]
    raw = emu.raw_output(tid)
    r = emu.get(f"/threads/{tid}/result", outputOnly="true")
    assert r["outputTotalBytes"] == str(size)
    assert r.get("outputTruncated", False) is truncated
    assert base64.b64decode(r["outputData"]) == raw[:4 * MiB]


@pytest.mark.timeout(60)
def test_unary_limit_option_moves_the_truncation_point():
    with running("--unary-limit", "1000", seed=None) as emu:
        small, big = emu.seed("echo", count=1, outputBytes=1000)[0], \
            emu.seed("echo", count=1, outputBytes=1001)[0]
        r = emu.get(f"/threads/{small}/result")
        assert "outputTruncated" not in r
        assert base64.b64decode(r["outputData"]) == emu.raw_output(small)
        r = emu.get(f"/threads/{big}/result")
        assert r["outputTruncated"] is True and r["outputTotalBytes"] == "1001"
        assert base64.b64decode(r["outputData"]) == emu.raw_output(big)[:1000]
        # the stream is not limited
        assert chunks_bytes(stream_result(emu, big)) == emu.raw_output(big)


# ---- StreamStepResult ----

@pytest.fixture(scope="module")
def bigreport(emu):
    tid = emu.seed("bigreport", count=1, outputBytes=1000, input='{"month":"2024-05"}')[0]
    return emu.get(f"/threads/{tid}")


def step_parts(messages):
    """{path: (meta, input bytes, output bytes)} from a step stream, checking
    the order: meta, input chunks, output chunks, step after step."""
    out, order = {}, []
    i = 0
    while i < len(messages):
        meta = messages[i]["stepMeta"]
        path = meta["stepPath"]
        order.append(path)
        i += 1
        parts = []
        for part in ("STEP_PART_INPUT", "STEP_PART_OUTPUT"):
            chunks = []
            while True:
                c = messages[i]["stepChunk"]
                assert c["stepPath"] == path and c["part"] == part, c
                chunks.append({"stepChunk": c})
                i += 1
                if c.get("isFinal"):
                    break
            parts.append(chunks_bytes(chunks, key="stepChunk"))
        out[path] = (meta, parts[0], parts[1])
    return out, order


@pytest.mark.parametrize("chunk", [None, KIB64, 1, 100000])
def test_step_stream_carries_a_200000_byte_step_output_byte_exact(emu, bigreport, chunk):
    tid = bigreport["threadId"]
    params = {"stepPath": "2"}
    if chunk is not None:
        params["maxChunkBytes"] = chunk
    status, body = emu.stream(f"/threads/{tid}/steps/stream", params=params)
    assert status == 200
    messages, error = parse_stream(body)
    assert error is None
    parts, order = step_parts(messages)
    assert order == ["2"]
    meta, inp, out = parts["2"]
    detail = emu.get(f"/threads/{tid}/result", stepPath="2")["stepDetails"][0]
    assert "inputJson" not in meta and "outputJson" not in meta
    assert meta == {k: v for k, v in detail.items() if k not in ("inputJson", "outputJson")}
    assert meta["outputTotalBytes"] == "200000" and meta["outputTruncated"] is True
    assert len(out) == 200000
    assert out[:65536] == detail["outputJson"].encode()
    json.loads(out)
    assert inp == detail["inputJson"].encode()
    assert meta["inputTotalBytes"] == str(len(inp))
    effective = 2 * MiB if chunk is None else max(chunk, KIB64)
    sizes = [len(base64.b64decode(m["stepChunk"].get("data", ""))) for m in messages
             if m.get("stepChunk", {}).get("part") == "STEP_PART_OUTPUT"]
    expected = [effective] * (200000 // effective)
    if 200000 % effective:
        expected.append(200000 % effective)
    assert sizes == expected


def test_step_stream_of_every_step_matches_the_step_details(emu, bigreport):
    tid = bigreport["threadId"]
    status, body = emu.stream(f"/threads/{tid}/steps/stream",
                              params={"maxChunkBytes": KIB64})
    messages, error = parse_stream(body)
    assert error is None
    parts, order = step_parts(messages)
    assert order == ["1", "2", "3"]
    for path in order:
        meta, inp, out = parts[path]
        detail = emu.get(f"/threads/{tid}/result", stepPath=path)["stepDetails"][0]
        assert detail.get("inputJson", "").encode() == inp[:65536]
        assert detail.get("outputJson", "").encode() == out[:65536]
        assert int(meta.get("inputTotalBytes", 0)) == len(inp)
        assert int(meta.get("outputTotalBytes", 0)) == len(out)
        assert meta["status"] == "STEP_STATUS_COMPLETED"
    # the first step's input is the thread's input
    assert parts["1"][1] == bigreport["inputJson"].encode()


def test_step_stream_of_steps_not_run_has_empty_final_parts(emu):
    t = emu.post("/threads", {"scriptName": "nightly"})
    tid = t["threadId"]
    emu.wait_status(tid, {"running"})
    status, body = emu.stream(f"/threads/{tid}/steps/stream", params={"stepPath": "3"})
    assert status == 200
    messages, _ = parse_stream(body)
    assert messages[0]["stepMeta"]["status"] == "STEP_STATUS_PENDING"
    assert messages[1:] == [
        {"stepChunk": {"stepPath": "3", "part": "STEP_PART_INPUT", "isFinal": True}},
        {"stepChunk": {"stepPath": "3", "part": "STEP_PART_OUTPUT", "isFinal": True}}]
    emu.post(f"/threads/{tid}/cancel")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001f600"], ids=["2-byte", "3-byte",
                                                                         "4-byte"])
def test_step_detail_cut_at_64_kib_never_splits_a_utf8_character(char):
    """The 64 KiB inline cap falls inside a multi-byte character for some
    offset of it; the inline text must stay valid (a prefix of at most
    65536 bytes), with the totals and the stream intact."""
    with running(seed=None) as emu:
        for pad in range(len(char.encode())):
            payload = json.dumps("x" * pad + char * (70000 // len(char.encode())),
                                 ensure_ascii=False).encode()
            t = emu.post("/threads", {"scriptName": "echo",
                                      "inputJson": payload.decode()})
            emu.wait_status(t["threadId"], {"completed"})
            status, _, body = emu.request(
                "GET", API + f"/threads/{t['threadId']}/result", params={"stepPath": "1"})
            assert status == 200, body[:200]
            d = json.loads(body)["stepDetails"][0]
            inline = d["inputJson"].encode()
            assert 65536 - 3 <= len(inline) <= 65536
            assert payload.startswith(inline)
            assert d["inputTruncated"] is True
            assert d["inputTotalBytes"] == str(len(payload))
            status, body = emu.stream(f"/threads/{t['threadId']}/steps/stream",
                                      params={"stepPath": "1"})
            parts, _ = step_parts(parse_stream(body)[0])
            assert parts["1"][1] == payload
