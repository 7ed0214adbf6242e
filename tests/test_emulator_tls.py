"""The API over HTTPS (--tls-cert/--tls-key): a test CA and a server
certificate for 127.0.0.1 (an IP SAN) made with the openssl CLI; every kind
of call works for a client that trusts the CA, and a client that does not
is refused."""

import base64
import http.client
import os
import socket
import ssl

import pytest

from harness import API, MiB, chunks_bytes, make_pki, parse_stream, raw_stream, running

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), "scriptum test CA")


@pytest.fixture(scope="module")
def tls_emu(start_emulator, pki):
    return start_emulator(token="tls-token",
                          tls=(pki["server.pem"], pki["server.key"], pki["ca.pem"]))


def test_the_emulator_announces_an_https_url(tls_emu):
    assert tls_emu.scheme == "https"
    assert tls_emu.url.startswith("https://127.0.0.1:")


def test_unary_calls_work_over_https(tls_emu):
    assert tls_emu.get("/health")["status"] == "SERVING"
    assert [s["name"] for s in tls_emu.get("/scripts")["scripts"]][0] == "echo"
    t = tls_emu.post("/threads", {"scriptName": "echo", "inputJson": '{"tls":true}'})
    done = tls_emu.wait_status(t["threadId"], {"completed"})
    r = tls_emu.get(f"/threads/{done['threadId']}/result")
    assert base64.b64decode(r["outputData"]) == b'{"tls":true}'
    page = tls_emu.get("/threads", pageSize=5)
    assert len(page["threads"]) == 5 and page["nextPageToken"]


def test_auth_still_applies_over_https(tls_emu):
    status, _, body = tls_emu.request("GET", API + "/threads", auth=False)
    assert status == 401


def test_streams_work_over_https_byte_exact(tls_emu):
    tid = tls_emu.seed("echo", count=1, outputBytes=3 * MiB + 1)[0]
    raw = tls_emu.raw_output(tid)
    assert len(raw) == 3 * MiB + 1
    status, body = tls_emu.stream(f"/threads/{tid}/result/stream",
                                  params={"maxChunkBytes": 65536})
    assert status == 200
    messages, error = parse_stream(body)
    assert error is None and chunks_bytes(messages) == raw
    status, body = tls_emu.stream(f"/threads/{tid}/steps/stream")
    assert status == 200 and parse_stream(body)[1] is None


def test_a_watch_works_over_https_through_a_pause(tls_emu):
    tid = tls_emu.post("/threads", {"scriptName": "approval"})["threadId"]
    tls_emu.wait_status(tid, {"paused"})
    with raw_stream(tls_emu, f"/threads/{tid}/watch") as s:
        assert s.status == 200
        assert s.next_message()["type"] == "THREAD_EVENT_TYPE_SNAPSHOT"
        assert s.idle(0.5)
        tls_emu.post(f"/threads/{tid}/resume", {"stepInputOverrideJson": '"approve"'})
        events = []
        while (m := s.next_message(timeout=30)) is not None:
            events.append(m)
    assert events[-1]["thread"]["status"] == "THREAD_STATUS_COMPLETED"


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_emu, pki):
    ctx = ssl.create_default_context(cafile=pki["other.pem"])
    conn = http.client.HTTPSConnection("127.0.0.1", tls_emu.port, context=ctx, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", API + "/health")
    conn.close()


def test_plain_http_to_the_https_port_gets_no_api_answer(tls_emu):
    conn = http.client.HTTPConnection("127.0.0.1", tls_emu.port, timeout=10)
    try:
        conn.request("GET", API + "/health")
        resp = conn.getresponse()
        assert resp.status != 200 or b"SERVING" not in resp.read()
    except (http.client.HTTPException, ConnectionError, OSError):
        pass
    finally:
        conn.close()
    # and the emulator keeps serving HTTPS
    assert tls_emu.get("/health")["status"] == "SERVING"


def test_the_certificate_names_127_0_0_1(tls_emu, pki):
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    with ctx.wrap_socket(socket.create_connection(
            ("127.0.0.1", tls_emu.port), timeout=10), server_hostname="127.0.0.1") as s:
        cert = s.getpeercert()
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]


@pytest.mark.timeout(60)
def test_a_missing_certificate_file_fails_at_start(pki, tmp_path):
    with pytest.raises(RuntimeError):
        with running(tls=(str(tmp_path / "nope.pem"), pki["server.key"], pki["ca.pem"])):
            pass
    assert os.path.exists(pki["server.key"])
