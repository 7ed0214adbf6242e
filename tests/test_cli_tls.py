"""The CLI over HTTPS (scriptum(1), scriptum-config(5)): an emulator with a
certificate from a test CA (made with the openssl CLI, as
test_emulator_tls.py does), trusted through a profile's ca_file in
~/.config/scriptum/config.yaml; without the CA, or with another CA, the
call fails with a TLS message."""

import json
import re

import pytest

from harness import (MiB, make_pki, assert_same_message, file_sha256, get_canonical, raw_output_sha256,
                     scriptum, write_config)

pytestmark = pytest.mark.timeout(60)

TOKEN = "tls-cli-token"
TLS_ERROR = re.compile(r"certificate|TLS|SSL|verif|issuer", re.I)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("cli-pki"), "scriptum CLI test CA")


@pytest.fixture
def emu(new_emulator, pki):
    return new_emulator(seed=None, token=TOKEN,
                        tls=(pki["server.pem"], pki["server.key"], pki["ca.pem"]))


@pytest.fixture
def home(tmp_path, emu, pki):
    """A HOME whose config file has a profile for the emulator with its CA."""
    h = tmp_path / "home"
    h.mkdir()
    write_config(h, f"""profile: local
profiles:
  local:
    endpoint: {emu.url}
    token: {TOKEN}
    ca_file: {pki['ca.pem']}
  wrongca:
    endpoint: {emu.url}
    token: {TOKEN}
    ca_file: {pki['other.pem']}
""")
    return h


def test_the_emulator_speaks_https(emu):
    assert emu.url.startswith("https://127.0.0.1:")


def test_health_over_https_with_the_profiles_ca(emu, home):
    res = scriptum(emu, "-o", "json", "health", endpoint=False, token=None, home=home)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["status"] == "SERVING"


def test_calls_over_https_with_the_profiles_ca_and_token(emu, home):
    ids = emu.seed("echo", count=3)
    res = scriptum(emu, "-o", "json", "thread", "list", endpoint=False, token=None, home=home)
    assert res.rc == 0, res.err
    assert [t["threadId"] for t in json.loads(res.out)] == list(reversed(ids))
    res = scriptum(emu, "-o", "json", "thread", "get", ids[0], endpoint=False, token=None,
                   home=home)
    assert res.rc == 0, res.err
    assert_same_message(json.loads(res.out), get_canonical(emu, f"/threads/{ids[0]}"))


def test_a_stream_over_https_is_byte_exact(emu, home, tmp_path):
    tid = emu.seed("echo", outputBytes=3 * MiB + 1)[0]
    d = tmp_path / "save"
    res = scriptum(emu, "thread", "result", tid, "--save", str(d), endpoint=False, token=None,
                   home=home)
    assert res.rc == 0, res.err
    assert file_sha256(d / "output.json") == raw_output_sha256(emu, tid)


@pytest.mark.timeout(60)
def test_run_over_https(emu, home):
    res = scriptum(emu, "thread", "run", "echo", "--input", '{"tls":true}', "--result",
                   endpoint=False, token=None, home=home)
    assert res.rc == 0, res.err
    assert res.out == b'{"tls":true}'


def test_without_the_ca_the_call_fails_with_a_tls_message(emu):
    res = scriptum(emu, "--timeout", "10s", "thread", "list", timeout=40)
    assert res.rc != 0
    assert res.rc in (9, 10), (res.rc, res.err)
    assert res.out == b""
    assert TLS_ERROR.search(res.err), res.err
    assert "ListThreads" in res.err
    assert emu.requests_log()["byCall"].get("ListThreads", 0) == 0


def test_with_another_ca_the_call_fails_with_a_tls_message(emu, home):
    res = scriptum(emu, "--profile", "wrongca", "--timeout", "10s", "health", endpoint=False,
                   token=None, home=home, timeout=40)
    assert res.rc != 0
    assert TLS_ERROR.search(res.err), res.err
    assert res.out == b""


def test_a_missing_ca_file_is_an_error_naming_it(emu, tmp_path):
    h = tmp_path / "home"
    write_config(h, f"""profiles:
  default:
    endpoint: {emu.url}
    ca_file: {tmp_path / 'no-such-ca.pem'}
""")
    res = scriptum(emu, "health", endpoint=False, token=None, home=h, timeout=40)
    assert res.rc != 0
    assert "no-such-ca.pem" in res.err


def test_plain_http_to_the_https_port_fails(emu):
    url = emu.url.replace("https://", "http://")
    res = scriptum(emu, "--timeout", "5s", "health", endpoint=url, token=None, timeout=40)
    assert res.rc != 0
    assert res.out == b""
