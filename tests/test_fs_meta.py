""".scriptumfs/ (SPEC §3, §7) and who may use the mount (§4): errors lists
recent failed API calls, stats is text, config shows the endpoint and never
a secret; a mount set up from a profile of the config file; a config file
holding a secret that others can read is refused; another user cannot read
the mount unless it was mounted with allow_other."""

import os
import re

import pytest

from harness import mode_of, MountFailed, os_error, read, run_cmd, write_config

pytestmark = pytest.mark.timeout(90)

TOKEN = "s3cr3t-T0ken-for-the-mount-7f1c"


@pytest.fixture
def emu(new_emulator):
    """An emulator with a token, the demo catalog and no threads."""
    return new_emulator(seed=None, token=TOKEN)


@pytest.fixture
def fs(emu, mount_fs):
    return mount_fs(emu)  # the token goes in a token_file


def test_scriptumfs_holds_errors_stats_and_config(fs):
    d = fs(".scriptumfs")
    assert mode_of(d) == ("d", 0o555)
    assert set(os.listdir(d)) == {"errors", "stats", "config"}
    for name in ("errors", "stats", "config"):
        assert mode_of(os.path.join(d, name)) == ("f", 0o444), name
        st = os.stat(os.path.join(d, name))
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    res = run_cmd(["ls", "-A", fs.path], check=True)
    assert ".scriptumfs" in res.stdout.decode().split()


def test_errors_lists_a_failed_call(emu, fs):
    missing = "thr_missing00000"
    res = run_cmd(["cat", fs.thread(missing, "status")])
    assert res.returncode != 0
    text = read(fs(".scriptumfs", "errors")).decode()
    lines = [l for l in text.splitlines() if missing in l]
    assert lines, f"no line about {missing} in .scriptumfs/errors:\n{text}"
    line = lines[-1]
    assert "GetThread" in line, line
    assert "404" in line, line
    assert re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}", line), line  # its time
    assert "not found" in line.lower(), line  # the API's message
    res = run_cmd(["grep", "-c", missing, fs(".scriptumfs", "errors")], check=True)
    assert int(res.stdout) >= 1


def test_errors_is_empty_text_before_any_failure(fs):
    assert read(fs(".scriptumfs", "errors")).strip() == b""


def test_stats_is_non_empty_text(emu, fs):
    tid = emu.seed("echo", outputBytes=1000)[0]
    read(fs.thread(tid, "output.json"))
    data = read(fs(".scriptumfs", "stats"))
    assert data.strip(), "stats is empty"
    text = data.decode()  # text, not binary
    assert text.endswith("\n")
    assert all(c.isprintable() or c in "\n\t" for c in text)
    res = run_cmd(["cat", fs(".scriptumfs", "stats")], check=True)
    assert res.stdout.strip()
    # one "name value" a line, every value a count; the heap in use is one
    values = dict(ln.split(" ") for ln in text.splitlines())
    assert all(v.isdigit() for v in values.values()), values
    assert int(values["heap_bytes"]) > 0
    assert int(values["payload_downloads"]) >= 1


def test_config_shows_the_endpoint_and_never_the_token(emu, fs):
    text = read(fs(".scriptumfs", "config")).decode()
    assert emu.url in text, text
    assert TOKEN not in text
    res = run_cmd(["grep", "-r", TOKEN, fs(".scriptumfs")])
    assert res.returncode == 1, f"the token is under .scriptumfs: {res.stdout!r}"
    # nor anywhere the daemon shows it: its arguments
    with open(f"/proc/{fs.daemon_pid}/cmdline", "rb") as f:
        assert TOKEN.encode() not in f.read()
    # the token works (calls go through), it is just never shown
    tid = emu.seed("echo")[0]
    assert read(fs.thread(tid, "status")) == b"completed\n"
    res = run_cmd(["cat", fs.thread("thr_missing00000", "status")])
    assert res.returncode != 0
    assert TOKEN not in read(fs(".scriptumfs", "errors")).decode()


def test_the_token_is_not_in_the_daemons_log(emu, mount_fs):
    fs = mount_fs(emu)
    tid = emu.seed("echo")[0]
    read(fs.thread(tid, "status"))
    run_cmd(["cat", fs.thread("thr_missing00000", "status")])
    log = fs.stop()
    assert TOKEN not in log


def test_a_mount_from_a_profile_of_the_config_file(emu, mount_fs, tmp_path):
    home = tmp_path / "home"
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    write_config(home, f"""profile: nowhere
profiles:
  nowhere:
    endpoint: http://127.0.0.1:1
  emu:
    endpoint: {emu.url}
    token_file: {token}
""")
    fs = mount_fs(emu, endpoint=None, profile="emu", home=str(home))
    tid = emu.seed("echo")[0]
    assert read(fs.thread(tid, "status")) == b"completed\n"
    text = read(fs(".scriptumfs", "config")).decode()
    assert emu.url in text
    assert TOKEN not in text


def test_a_config_file_with_a_token_others_can_read_is_refused(emu, mount_fs, tmp_path):
    home = tmp_path / "home"
    path = write_config(home, f"""profiles:
  default:
    endpoint: {emu.url}
    token: {TOKEN}
""", mode=0o644)
    with pytest.raises(MountFailed) as e:
        mount_fs(emu, endpoint=None, home=str(home), token_file=False)
    assert e.value.rc != 0
    assert path in e.value.stderr or "config.yaml" in e.value.stderr, e.value.stderr
    assert TOKEN not in e.value.stderr


# ---- other users ----

def as_nobody(cmd, timeout=30):
    """Runs a shell command as the user nobody."""
    return run_cmd(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                    "sh", "-c", cmd], timeout=timeout, cwd="/")


def test_another_user_cannot_read_the_mount(emu, fs):
    tid = emu.seed("echo")[0]
    assert read(fs.thread(tid, "status")) == b"completed\n"
    # the mount point's parent is open to everyone: only the mount says no
    assert as_nobody(f"ls {os.path.dirname(fs.path)}").returncode == 0
    for cmd in (f"ls {fs.path}", f"ls {fs('threads')}", f"cat {fs.thread(tid, 'status')}"):
        res = as_nobody(cmd)
        assert res.returncode != 0, cmd
        assert "Permission denied" in res.stderr, (cmd, res.stderr)
    res = as_nobody(f"echo '{{}}' > {fs('scripts', 'echo', 'new')}")
    assert res.returncode != 0 and "Permission denied" in res.stderr


def test_another_user_may_read_with_allow_other_but_not_write(emu, mount_fs):
    fs = mount_fs(emu, options=["allow_other"])
    tid = emu.seed("echo")[0]
    res = as_nobody(f"cat {fs.thread(tid, 'status')}")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"completed\n"
    res = as_nobody(f"ls {fs('threads')}")
    assert res.returncode == 0 and tid in res.stdout.decode()
    before = len(emu.get("/threads").get("threads", []))
    res = as_nobody(f"echo '{{}}' > {fs('scripts', 'echo', 'new')}")
    assert res.returncode != 0 and "Permission denied" in res.stderr, res.stderr
    res = as_nobody(f"echo x > {fs.thread(tid, 'cancel')}")
    assert res.returncode != 0 and "Permission denied" in res.stderr, res.stderr
    assert len(emu.get("/threads").get("threads", [])) == before


def test_the_mounting_user_owns_everything(emu, fs):
    tid = emu.seed("fanout")[0]
    res = run_cmd(["find", fs.path, "-maxdepth", "5", "!", "-user", str(os.getuid()),
                   "-print"], timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"", f"files not owned by the mounting user: {res.stdout[:500]!r}"
    res = run_cmd(["find", fs.thread(tid), "-type", "f", "-perm", "/0022"], check=True)
    assert res.stdout == b"", "group- or other-writable files"
    refused = ("EACCES", "EROFS", "EPERM", "ENOSYS")
    assert os_error(os.mkdir, fs.thread(tid, "newdir")) in refused
    assert os_error(os.unlink, fs.thread(tid, "status")) in refused
    assert os.path.exists(fs.thread(tid, "status"))
