"""The CLI's configuration (scriptum-config(5)): the file in a temporary
HOME, a profile chosen with --profile or SCRIPTUM_PROFILE (flag first),
--config and SCRIPTUM_CONFIG, precedence of flags over the environment over
the file, a token_file, and a file holding a secret that others can read
refused with the reason."""

import json
import os

import pytest

from harness import scriptum, write_config

pytestmark = pytest.mark.timeout(60)

TOKEN = "cfg-token-1234"
DEAD = "http://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
def emu(new_emulator):
    return new_emulator(seed=None, token=TOKEN)


@pytest.fixture
def home(tmp_path, emu):
    """A HOME with a config file whose default profile points nowhere, a
    'good' profile for the emulator and a 'badtoken' one."""
    h = tmp_path / "home"
    h.mkdir()
    write_config(h, f"""profile: nowhere
profiles:
  nowhere:
    endpoint: {DEAD}
    token: {TOKEN}
    timeout: 3s
  good:
    endpoint: {emu.url}
    token: {TOKEN}
  badtoken:
    endpoint: {emu.url}
    token: not-the-token
""")
    return h


def run(emu, home, *args, env=None, token=None, timeout=40):
    return scriptum(emu, *args, endpoint=False, token=token, home=home, env=env,
                    timeout=timeout)


def listed(res):
    assert res.rc == 0, f"exit {res.rc}: {res.err}"
    return json.loads(res.out)


def test_the_default_profile_of_the_file_is_used(emu, home):
    res = run(emu, home, "thread", "list")
    assert res.rc == 9, res.err  # nowhere answers
    assert "ListThreads" in res.err


def test_a_profile_chosen_with_the_flag(emu, home):
    ids = emu.seed("echo", count=2)
    got = listed(run(emu, home, "-o", "json", "thread", "list", "--profile", "good"))
    assert [t["threadId"] for t in got] == list(reversed(ids))


def test_a_profile_chosen_with_scriptum_profile(emu, home):
    ids = emu.seed("echo", count=2)
    got = listed(run(emu, home, "-o", "json", "thread", "list",
                     env={"SCRIPTUM_PROFILE": "good"}))
    assert [t["threadId"] for t in got] == list(reversed(ids))


def test_the_profile_flag_wins_over_scriptum_profile(emu, home):
    emu.seed("echo")
    got = listed(run(emu, home, "-o", "json", "thread", "list", "--profile", "good",
                     env={"SCRIPTUM_PROFILE": "badtoken"}))
    assert len(got) == 1
    res = run(emu, home, "thread", "list", "--profile", "badtoken",
              env={"SCRIPTUM_PROFILE": "good"})
    assert res.rc == 3, res.err
    assert "not-the-token" not in res.err


def test_the_token_comes_from_the_chosen_profile(emu, home):
    res = run(emu, home, "thread", "list", "--profile", "badtoken")
    assert res.rc == 3
    assert "ListThreads" in res.err


def test_scriptum_token_wins_over_the_profiles_token(emu, home):
    res = run(emu, home, "-o", "json", "thread", "list", "--profile", "badtoken",
              token=TOKEN)
    assert listed(res) == []


def test_the_endpoint_flag_wins_over_the_profile(emu, home):
    res = scriptum(emu, "-o", "json", "thread", "list", home=home, token=None)
    # --api-endpoint (the emulator) over the default profile's dead endpoint; the
    # credentials still come from the file
    assert listed(res) == []


def test_scriptum_api_endpoint_wins_over_the_profile(emu, home):
    res = run(emu, home, "-o", "json", "thread", "list",
              env={"SCRIPTUM_API_ENDPOINT": emu.url})
    assert listed(res) == []


def test_an_unknown_profile_exits_2_naming_it(emu, home):
    res = run(emu, home, "thread", "list", "--profile", "nope")
    assert res.rc == 2
    assert "nope" in res.err
    assert emu.requests_log()["total"] == 0


def test_a_config_file_named_with_the_flag(emu, tmp_path):
    cfg = tmp_path / "elsewhere.yaml"
    cfg.write_text(f"profiles:\n  default:\n    endpoint: {emu.url}\n    token: {TOKEN}\n")
    cfg.chmod(0o600)
    h = tmp_path / "emptyhome"
    h.mkdir()
    assert listed(run(emu, h, "-o", "json", "thread", "list", "--config", str(cfg))) == []
    assert listed(run(emu, h, "-o", "json", "thread", "list",
                      env={"SCRIPTUM_CONFIG": str(cfg)})) == []


def test_a_config_file_named_with_the_flag_must_exist(emu, tmp_path):
    res = run(emu, tmp_path, "thread", "list", "--config", str(tmp_path / "missing.yaml"))
    assert res.rc == 2
    assert "missing.yaml" in res.err


def test_a_group_readable_config_holding_a_token_is_refused(emu, tmp_path):
    h = tmp_path / "home"
    path = write_config(h, f"profiles:\n  default:\n    endpoint: {emu.url}\n"
                           f"    token: {TOKEN}\n", mode=0o644)
    res = run(emu, h, "thread", "list")
    assert res.rc == 2, res.err
    assert path in res.err
    assert "readable" in res.err and ("group" in res.err or "others" in res.err), res.err
    assert "chmod" in res.err or "0644" in res.err
    assert TOKEN not in res.err
    assert emu.requests_log()["total"] == 0


def test_a_world_readable_config_holding_a_token_is_refused(emu, tmp_path):
    h = tmp_path / "home"
    write_config(h, f"profiles:\n  default:\n    endpoint: {emu.url}\n"
                    f"    token: {TOKEN}\n", mode=0o604)
    res = run(emu, h, "thread", "list")
    assert res.rc == 2
    assert "readable" in res.err


def test_a_readable_config_without_secrets_is_fine(emu, tmp_path):
    h = tmp_path / "home"
    tf = tmp_path / "token"
    tf.write_text(TOKEN + "\n")
    tf.chmod(0o600)
    write_config(h, f"profiles:\n  default:\n    endpoint: {emu.url}\n"
                    f"    token_file: {tf}\n", mode=0o644)
    assert listed(run(emu, h, "-o", "json", "thread", "list")) == []


def test_a_group_readable_token_file_is_refused(emu, tmp_path):
    h = tmp_path / "home"
    tf = tmp_path / "token"
    tf.write_text(TOKEN + "\n")
    tf.chmod(0o640)
    write_config(h, f"profiles:\n  default:\n    endpoint: {emu.url}\n"
                    f"    token_file: {tf}\n")
    res = run(emu, h, "thread", "list")
    assert res.rc != 0
    assert str(tf) in res.err and "readable" in res.err
    assert TOKEN not in res.err


def test_the_token_file_flag_supplies_the_token(emu, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("old-token\n")
    tf.chmod(0o600)
    res = scriptum(emu, "thread", "list", "--token-file", str(tf), token=None)
    assert res.rc == 3
    tf.write_text(TOKEN + "\n")
    res = scriptum(emu, "-o", "json", "thread", "list", "--token-file", str(tf), token=None)
    assert listed(res) == []


def test_a_config_file_with_bad_yaml_exits_2(emu, tmp_path):
    h = tmp_path / "home"
    path = write_config(h, "profiles: [unclosed\n")
    res = run(emu, h, "thread", "list")
    assert res.rc == 2
    assert path in res.err


def test_xdg_config_home_is_honoured(emu, tmp_path):
    xdg = tmp_path / "xdg"
    (xdg / "scriptum").mkdir(parents=True)
    cfg = xdg / "scriptum" / "config.yaml"
    cfg.write_text(f"profiles:\n  default:\n    endpoint: {emu.url}\n    token: {TOKEN}\n")
    os.chmod(cfg, 0o600)
    h = tmp_path / "home"
    h.mkdir()
    res = run(emu, h, "-o", "json", "thread", "list", env={"XDG_CONFIG_HOME": str(xdg)})
    assert listed(res) == []


def test_org_headers_are_sent(emu, home):
    res = run(emu, home, "thread", "list", "--profile", "good", "--org-id", "org_42",
              "--org-name", "acme")
    assert res.rc == 0, res.err
    entry = [e for e in emu.requests_log()["recent"] if e["call"] == "ListThreads"][-1]
    assert entry.get("orgId") == "org_42" and entry.get("orgName") == "acme"


def test_org_from_the_environment(emu, home):
    res = run(emu, home, "thread", "list", "--profile", "good",
              env={"SCRIPTUM_ORG_ID": "org_env", "SCRIPTUM_ORG_NAME": "envco"})
    assert res.rc == 0, res.err
    entry = [e for e in emu.requests_log()["recent"] if e["call"] == "ListThreads"][-1]
    assert entry.get("orgId") == "org_env" and entry.get("orgName") == "envco"


def test_health_needs_no_token_from_anywhere(emu, tmp_path):
    res = scriptum(emu, "-o", "json", "health", token=None)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["status"] == "SERVING"


@pytest.mark.timeout(60)
def test_a_profiles_min_rate_and_window_hold_a_trickling_stream_to_the_floor(emu, tmp_path):
    h = tmp_path / "floor-home"
    h.mkdir()
    write_config(h, f"""profile: slowfloor
profiles:
  slowfloor:
    endpoint: {emu.url}
    token: {TOKEN}
    min_rate: 64KiB
    min_rate_window: 2s
""")
    tid = emu.seed("echo", outputBytes=2 << 20)[0]
    emu.faults(trickleAfterBytes=100000, trickleMs=100, match="/result/stream")
    try:
        res = run(emu, h, "thread", "result", tid, "--save", str(tmp_path / "out"), timeout=30)
    finally:
        emu.clear_faults()
    assert res.rc == 8, (res.rc, res.err)
    assert "fell below 65536 bytes/s" in res.err and "in the last 2 s" in res.err, res.err
