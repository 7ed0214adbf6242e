"""The secret check itself (harness.SecretScan, conftest.no_secret_in_outputs;
SPEC §7, §9; issue 13) cannot pass by seeing nothing: fake outputs holding a
registered secret are reported, masked and named, and real outputs of the
CLI and of the mount that hold a value registered as a secret are caught on
the paths the suite uses (scriptum(), a mount's .scriptumfs/config, the
daemon's log)."""

import os

import pytest

import harness
from harness import Mount, MountFailed, SecretScan, scriptum

CANARY = "canary-secret-0042"  # registered only in the private registries below


@pytest.fixture
def private_scan(monkeypatch):
    """A fresh registry in place of harness.SECRETS for one test, so that
    the canary's deliberate hits do not fail the test through the real
    check (which goes on with the session's registry afterwards)."""
    scan = SecretScan()
    monkeypatch.setattr(harness, "SECRETS", scan)
    return scan


def test_a_fake_output_holding_a_secret_is_reported_masked():
    scan = SecretScan()
    assert scan.register(CANARY, "the canary")
    scan.begin("tests/x.py::test_leaks")
    out = b"line one\nscriptum: 401: Authorization: Bearer " + CANARY.encode() + b" (again " + \
        CANARY.encode() + b")\n"
    hits = scan.scan(f"the stderr of scriptum --token {CANARY} thread list", out)
    assert len(hits) == 1
    h = hits[0]
    assert h["test"] == "tests/x.py::test_leaks" and h["count"] == 2
    assert "Bearer <secret 1>" in h["excerpt"]
    assert h["stream"] == "the stderr of scriptum --token <secret 1> thread list"
    text = SecretScan.describe(scan.end())
    assert CANARY not in text and "the canary" in text and "test_leaks" in text, text
    # the next test starts clean
    scan.begin("tests/x.py::test_clean")
    assert scan.scan("the stdout of scriptum thread list", "nothing here\n") == []
    assert scan.end() == []


def test_encoded_short_and_unclaimed_forms():
    scan = SecretScan()
    assert scan.register("cs/S3CRET+x&y-41", "a client secret")
    assert not scan.register("old", "too short to tell from a word")
    assert not scan.register(None, "no token")
    # the form-encoded spelling of a client secret is a hit too
    (h,) = scan.scan("a log", "client_secret=cs%2FS3CRET%2Bx%26y-41&grant_type=x")
    assert "cs%2F" not in h["excerpt"] and "<secret 1>" in h["excerpt"]
    assert scan.scan("a log", "old folder, bold") == []
    # a hit outside any test is kept for the session's end
    assert scan.unclaimed() == [h] and "1 hit(s)" in scan.summary()


def test_the_module_constants_and_config_secrets_are_registered():
    scan = SecretScan()

    class Module:
        __name__ = "test_fake"
        TOKEN = "module-token-1234"
        CLIENT_SECRET = "module-client-secret"
        PLAIN_VALUE = "visible-value-1234"
        EMULATOR_TOKEN = object()

    scan.register_module(Module)
    scan.register_config("profiles:\n  a:\n    token: 'cfg-token-9876'\n"
                         "    client_secret: cfg-client-secret\n    org_id: org-1234567\n", "cfg")
    assert set(scan.secrets) == {"module-token-1234", "module-client-secret",
                                 "cfg-token-9876", "cfg-client-secret"}


def test_the_cli_s_output_is_scanned(private_scan):
    private_scan.register(CANARY, "the canary")
    res = scriptum(None, CANARY, endpoint=False, token=None)
    assert res.rc == 2 and CANARY in res.err  # the CLI names the unknown command
    (h,) = private_scan.hits
    assert h["stream"].startswith("the stderr of scriptum <secret 1>"), h
    assert "unknown command '<secret 1>'" in h["excerpt"], h


def test_a_mount_s_config_file_and_log_are_scanned(private_scan, emu):
    private_scan.register(CANARY, "the canary")
    cache = os.path.join(harness.MOUNT_ROOT, f"scriptumfs-test-cache-{os.getpid()}-{CANARY}")
    m = Mount(emu, cache_dir=cache)
    try:
        assert CANARY in m.read(".scriptumfs", "config").decode()
    finally:
        m.stop()
        harness.shutil.rmtree(cache, ignore_errors=True)
    streams = [h["stream"] for h in private_scan.hits]
    assert "the .scriptumfs/config of a mount" in streams, private_scan.hits
    # a mount that fails to start: its log names the cache directory
    private_scan.hits.clear()
    with pytest.raises(MountFailed):
        Mount(emu, cache_dir=f"/proc/{CANARY}/cache")
    assert [h["stream"] for h in private_scan.hits] == ["the log (stderr) of scriptumfs"], \
        private_scan.hits
