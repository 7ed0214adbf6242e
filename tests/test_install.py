"""make install and make uninstall, and scriptumfs mounted as a system file
system (SPEC §1, issue 5).

The install tests stage into a temporary DESTDIR: the exact files and
modes, installing twice, uninstalling everything, the /sbin link left out
where sbin is /sbin already, the installed manual pages opening with
`man -l`. The mount tests (root only) install once, link
/sbin/mount.scriptumfs to the staged helper for the module (removed at its
end), and mount each test's emulator for real: by `mount -t scriptumfs`,
by `mount -T <fstab>` with a profile as the source, by mount.fuse3 with
-t fuse.scriptumfs, as another user (setuid=), in another mount namespace
(-N); each reads a thread and ends the daemon with `umount`. A wrong
profile, a token file that others can read or that does not exist, and an
endpoint that does not answer each fail with the reason on stderr and
leave nothing mounted.

The binaries are those of $SCRIPTUM_BUILD: `make install SAN=1` for
build/asan, BUILD=<dir> for another.
"""

import contextlib
import filecmp
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from harness import (BUILD, CLI_ENV_VARS, force_unmount, fuse_mount_points, MOUNT_ROOT, read,
                     run_cmd, SANITIZER_ENV, TOP, write_config)

pytestmark = pytest.mark.timeout(300)

TOKEN = "s3cr3t-T0ken-for-the-helper-91ad"
PREFIX = "/usr/local"
BIN = ["scriptum", "scriptumfs", "scriptum-emulator"]
MAN = ["man1/scriptum.1", "man1/scriptumfs.1", "man1/scriptum-emulator.1",
       "man5/scriptum-config.5", "man8/mount.scriptumfs.8"]
SBIN_LINK = "/sbin/mount.scriptumfs"

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting through mount(8) needs root")


# ---- make install ----

def make(*args, timeout=600):
    """make -s TARGET ... in the top directory, for the binaries of
    $SCRIPTUM_BUILD, without the jobserver of a make that runs pytest."""
    build = os.path.relpath(BUILD, TOP)
    which = [] if build == "build" else ["SAN=1"] if build == os.path.join("build", "asan") \
        else [f"BUILD={build}"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return run_cmd(["make", "-s", "--no-print-directory", *args, *which], cwd=TOP, env=env,
                   timeout=timeout, check=True)


def install(destdir, prefix=PREFIX):
    return make("install", f"DESTDIR={destdir}", f"PREFIX={prefix}")


def uninstall(destdir, prefix=PREFIX):
    return make("uninstall", f"DESTDIR={destdir}", f"PREFIX={prefix}")


def tree(destdir):
    """{path under destdir: (type letter, mode or link target)} of every
    file and symbolic link; directories left out."""
    out = {}
    for d, dirs, files in os.walk(destdir):
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            path = os.path.join(d, name)
            rel = "/" + os.path.relpath(path, destdir)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path))
            else:
                out[rel] = ("f" if stat.S_ISREG(st.st_mode) else "?", stat.S_IMODE(st.st_mode))
    return out


def expected_tree(prefix=PREFIX, link=True):
    want = {f"{prefix}/bin/{b}": ("f", 0o755) for b in BIN}
    want[f"{prefix}/sbin/mount.scriptumfs"] = ("f", 0o755)
    want.update({f"{prefix}/share/man/{m}": ("f", 0o644) for m in MAN})
    if link:
        want[SBIN_LINK] = ("l", f"{prefix}/sbin/mount.scriptumfs")
    return want


def test_install_puts_the_binaries_the_helper_and_the_pages_with_their_modes(tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    assert tree(dest) == expected_tree()
    for b in BIN:
        assert filecmp.cmp(dest / f"usr/local/bin/{b}", os.path.join(BUILD, b), shallow=False), b
    assert filecmp.cmp(dest / "usr/local/sbin/mount.scriptumfs",
                       os.path.join(TOP, "mount-helper", "mount.scriptumfs"), shallow=False)
    for m in MAN:
        assert filecmp.cmp(dest / f"usr/local/share/man/{m}",
                           os.path.join(TOP, "man", os.path.basename(m)), shallow=False), m


def test_install_honours_prefix(tmp_path):
    dest = tmp_path / "dest"
    install(dest, prefix="/opt/scriptum")
    assert tree(dest) == expected_tree("/opt/scriptum")


def test_installing_twice_is_harmless(tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    first = tree(dest)
    install(dest)
    assert tree(dest) == first == expected_tree()


def test_uninstall_removes_what_install_put_and_nothing_else(tmp_path):
    dest = tmp_path / "dest"
    mine = dest / "usr/local/bin/someone-elses"
    mine.parent.mkdir(parents=True)
    mine.write_text("#!/bin/sh\n")
    install(dest)
    uninstall(dest)
    assert tree(dest) == {"/usr/local/bin/someone-elses": ("f", 0o644)}
    assert (dest / "usr/local/share/man/man8").is_dir()  # directories stay
    uninstall(dest)  # again: nothing left to remove, no error
    assert tree(dest) == {"/usr/local/bin/someone-elses": ("f", 0o644)}


def test_uninstall_leaves_a_sbin_link_it_did_not_make(tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    os.unlink(dest / "sbin/mount.scriptumfs")
    os.symlink("/opt/other/mount.scriptumfs", dest / "sbin/mount.scriptumfs")
    uninstall(dest)
    assert tree(dest) == {SBIN_LINK: ("l", "/opt/other/mount.scriptumfs")}


def test_no_sbin_link_where_prefix_sbin_is_sbin(tmp_path):
    # a merged /usr: /sbin is usr/sbin, so PREFIX=/usr puts the helper there
    # and a link would replace it with a link to itself
    dest = tmp_path / "dest"
    (dest / "usr/sbin").mkdir(parents=True)
    os.symlink("usr/sbin", dest / "sbin")
    install(dest, prefix="/usr")
    want = expected_tree("/usr", link=False)
    want["/sbin"] = ("l", "usr/sbin")
    assert tree(dest) == want
    uninstall(dest, prefix="/usr")
    assert tree(dest) == {"/sbin": ("l", "usr/sbin")}


def test_the_installed_pages_open_with_man(tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    for m in MAN:
        path = dest / "usr/local/share/man" / m
        res = run_cmd(["man", "-l", str(path)], env=env)
        assert res.returncode == 0, (m, res.stderr)
        assert res.stderr == "", (m, res.stderr)
        text = res.stdout.decode()
        assert "NAME" in text and "DESCRIPTION" in text, m
        name = os.path.basename(m).rsplit(".", 1)[0]
        assert name in text, m
        lint = run_cmd(["mandoc", "-T", "lint", str(path)])
        assert lint.stdout == b"" and lint.stderr == "", (m, lint.stdout, lint.stderr)


# ---- mounting through the installed helper ----

@pytest.fixture(scope="module")
def staged():
    """A DESTDIR with scriptumfs installed, /sbin/mount.scriptumfs linked to
    its helper for the module; yields the DESTDIR."""
    if os.geteuid() != 0:
        pytest.skip("mounting through mount(8) needs root")
    if os.path.lexists(SBIN_LINK):
        pytest.skip(f"{SBIN_LINK} exists (a real installation): not replacing it")
    dest = tempfile.mkdtemp(prefix="scriptumfs-install-", dir=MOUNT_ROOT)
    os.chmod(dest, 0o755)  # the setuid= user must reach the binaries
    try:
        install(dest)
        helper = os.path.join(dest, "usr/local/sbin/mount.scriptumfs")
        os.symlink(helper, SBIN_LINK)
        try:
            yield dest
        finally:
            if os.path.islink(SBIN_LINK) and os.readlink(SBIN_LINK) == helper:
                os.unlink(SBIN_LINK)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def mount_env(**extra):
    """What mount(8) is run with: the tests' environment without the
    variables scriptumfs reads, and the sanitizer options."""
    env = {k: v for k, v in os.environ.items()
           if k not in CLI_ENV_VARS and k != "XDG_CACHE_HOME"}
    env.update(SANITIZER_ENV)
    env.update(extra)
    return env


def daemons(mp):
    """The pids of the live scriptumfs processes serving mount point mp."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv[0].endswith(b"scriptumfs") and mp.encode() in argv:
            out.append(int(pid))
    return out


def argv_of(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def wait_gone(mp, timeout=20):
    deadline = time.monotonic() + timeout
    while daemons(mp) and time.monotonic() < deadline:
        time.sleep(0.05)
    return daemons(mp)


def mount_info(mp):
    """(source, fstype, mount options, file system options) of mp in this
    namespace, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mp:
                sep = fields.index("-")
                return fields[sep + 2], fields[sep + 1], fields[5], fields[sep + 3]
    return None


class Place:
    """A mount point, a cache directory, a home and a configuration file
    with the profile "emu", under a directory every user can traverse."""

    def __init__(self, emu=None, token_mode=0o600):
        self.dir = tempfile.mkdtemp(prefix="scriptumfs-helper-", dir=MOUNT_ROOT)
        os.chmod(self.dir, 0o755)
        self.mp = os.path.join(self.dir, "mnt")
        self.cache = os.path.join(self.dir, "cache")
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.mp)
        self.token = os.path.join(self.dir, "token")
        with open(self.token, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token, token_mode)
        lines = ["profiles:", "  emu:"]
        if emu is not None:
            lines.append(f"    endpoint: {emu.url}")
            if emu.token is not None:
                lines.append(f"    token_file: {self.token}")
        else:
            lines.append("    endpoint: http://127.0.0.1:1")
        self.config = write_config(self.home, "\n".join(lines) + "\n")

    def opts(self, *more):
        return ",".join([f"config={self.config}", f"cache_dir={self.cache}", *more])


@contextlib.contextmanager
def place(emu=None, **kw):
    """A Place; at the end whatever is still mounted on it is unmounted and
    its daemon killed, and the test fails if there was any."""
    p = Place(emu, **kw)
    try:
        yield p
    finally:
        left = []
        if p.mp in fuse_mount_points():
            left.append(f"{p.mp} was still mounted: {force_unmount(p.mp)}")
        for pid in daemons(p.mp):
            left.append(f"scriptumfs {pid} was still running")
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(p.dir, ignore_errors=True)
        assert not left, left


def assert_unmounts(mp, *umount):
    """umount (or the given command) ends the daemon of mp."""
    pids = daemons(mp)
    assert len(pids) == 1, pids
    run_cmd(list(umount) or ["umount", mp], check=True)
    assert mp not in fuse_mount_points()
    assert wait_gone(mp) == [], "the daemon did not exit after umount"


@root_only
def test_mount_t_scriptumfs_with_an_endpoint_reads_a_thread(staged, new_emulator):
    emu = new_emulator(seed=None)
    tid = emu.seed("echo")[0]
    with place(emu) as p:
        res = run_cmd(["mount", "-t", "scriptumfs", emu.url, p.mp, "-o",
                       p.opts("defaults", "nofail", "_netdev", "noauto", "comment=x",
                              "x-systemd.automount")], env=mount_env())
        assert res.returncode == 0, res.stderr
        assert res.stderr == ""
        assert mount_info(p.mp)[:2] == ("scriptumfs", "fuse.scriptumfs")
        assert read(os.path.join(p.mp, "threads", tid, "status")) == b"completed\n"
        (pid,) = daemons(p.mp)
        # the scriptumfs installed beside the helper, without the fstab-only
        # options
        assert argv_of(pid) == [os.path.join(staged, "usr/local/bin/scriptumfs"), emu.url,
                                p.mp, "-o", p.opts()]
        assert_unmounts(p.mp)


@root_only
def test_mount_from_an_fstab_line_with_a_profile(staged, new_emulator):
    emu = new_emulator(seed=None, token=TOKEN)
    tid = emu.seed("echo", status="failed")[0]
    with place(emu) as p:
        fstab = os.path.join(p.dir, "fstab")
        with open(fstab, "w") as f:
            f.write("# a temporary fstab\n"
                    f"emu  {p.mp}  scriptumfs  _netdev,nofail,x-systemd.automount,"
                    f"{p.opts('ro')}  0 0\n")
        res = run_cmd(["mount", "-T", fstab, p.mp], env=mount_env())
        assert res.returncode == 0, res.stderr
        assert read(os.path.join(p.mp, "threads", tid, "status")) == b"failed\n"
        config = read(os.path.join(p.mp, ".scriptumfs", "config")).decode()
        assert emu.url in config and "profile: emu" in config
        assert TOKEN not in config
        assert "ro" in mount_info(p.mp)[2].split(",")
        with pytest.raises(OSError) as e:
            with open(os.path.join(p.mp, "scripts", "echo", "new"), "w") as f:
                f.write("{}")
        assert e.value.errno == 30  # EROFS
        assert_unmounts(p.mp)


@root_only
def test_mount_fuse3_runs_scriptumfs_from_path(staged, new_emulator):
    # mount -t fuse.scriptumfs runs /sbin/mount.fuse3 with PATH removed, so
    # scriptumfs must be in /usr/local/bin or the like; here mount.fuse3 is
    # run as mount(8) would, with the staged bin/ on PATH
    fuse3 = shutil.which("mount.fuse3", path="/sbin:/usr/sbin")
    if fuse3 is None:
        pytest.skip("no mount.fuse3")
    emu = new_emulator(seed=None)
    tid = emu.seed("echo")[0]
    with place(emu) as p:
        env = mount_env(PATH=os.path.join(staged, "usr/local/bin") + ":" + os.environ["PATH"])
        env.pop("HOME", None)
        res = run_cmd([fuse3, emu.url, p.mp, "-o", p.opts("rw", "nofail", "_netdev"), "-t",
                       "fuse.scriptumfs"], env=env)
        assert res.returncode == 0, res.stderr
        assert mount_info(p.mp)[1] == "fuse.scriptumfs"
        assert read(os.path.join(p.mp, "threads", tid, "status")) == b"completed\n"
        assert_unmounts(p.mp)


@root_only
def test_setuid_mounts_as_that_user(staged, new_emulator):
    emu = new_emulator(seed=None)
    tid = emu.seed("echo")[0]
    with place(emu) as p:
        os.chown(p.mp, 65534, -1)
        os.mkdir(p.cache)
        os.chown(p.cache, 65534, -1)
        res = run_cmd(["mount", "-t", "scriptumfs", emu.url, p.mp, "-o",
                       f"cache_dir={p.cache},setuid=nobody"], env=mount_env())
        fuse = os.stat("/dev/fuse")
        if fuse.st_mode & 0o006 != 0o006:
            # libfuse opens /dev/fuse itself before it tries fusermount3
            assert res.returncode == 32, res.stderr
            assert "nobody cannot open /dev/fuse" in res.stderr, res.stderr
            assert p.mp not in fuse_mount_points()
            pytest.skip("/dev/fuse is not open to other users here: checked the refusal only")
        assert res.returncode == 0, res.stderr
        (pid,) = daemons(p.mp)
        assert os.stat(f"/proc/{pid}").st_uid == 65534
        assert "user_id=65534" in mount_info(p.mp)[3].split(",")
        out = run_cmd(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                       "cat", os.path.join(p.mp, "threads", tid, "status")], cwd="/")
        assert out.stdout == b"completed\n", out.stderr
        assert_unmounts(p.mp)


@root_only
def test_setuid_needs_a_mount_point_the_user_can_write(staged, new_emulator):
    emu = new_emulator(seed=None)
    with place(emu) as p:
        res = run_cmd(["mount", "-t", "scriptumfs", emu.url, p.mp, "-o",
                       f"cache_dir={p.cache},setuid=nobody"], env=mount_env())
        assert res.returncode == 32
        assert "nobody cannot" in res.stderr, res.stderr  # /dev/fuse, or the mount point
        assert p.mp not in fuse_mount_points()
        res = run_cmd(["mount", "-t", "scriptumfs", emu.url, p.mp, "-o", "setuid=nosuchuser9"],
                      env=mount_env())
        assert res.returncode == 1
        assert "setuid=nosuchuser9: no such user" in res.stderr, res.stderr


@root_only
def test_mount_in_another_namespace(staged, new_emulator):
    emu = new_emulator(seed=None)
    tid = emu.seed("echo")[0]
    with place(emu) as p:
        ns = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                               "sleep", "120"])
        try:
            target = f"/proc/{ns.pid}/ns/mnt"
            deadline = time.monotonic() + 5
            while os.readlink(target) == os.readlink("/proc/self/ns/mnt"):
                assert time.monotonic() < deadline, "unshare did not make a namespace"
                time.sleep(0.02)
            res = run_cmd(["mount", "-N", str(ns.pid), "-t", "scriptumfs", emu.url, p.mp,
                           "-o", p.opts()], env=mount_env())
            assert res.returncode == 0, res.stderr
            assert p.mp not in fuse_mount_points()  # not here
            with open(f"/proc/{ns.pid}/mountinfo") as f:
                assert f" {p.mp} " in f.read()
            into = ["nsenter", f"--mount={target}", "--"]
            out = run_cmd(into + ["cat", os.path.join(p.mp, "threads", tid, "status")])
            assert out.stdout == b"completed\n", out.stderr
            assert_unmounts(p.mp, *into, "umount", p.mp)
        finally:
            ns.kill()
            ns.wait()


@root_only
def test_a_wrong_profile_is_named_and_nothing_is_mounted(staged, new_emulator):
    emu = new_emulator(seed=None)
    with place(emu) as p:
        res = run_cmd(["mount", "-t", "scriptumfs", "nosuch", p.mp, "-o", p.opts()],
                      env=mount_env())
        assert res.returncode == 32
        assert 'profile "nosuch"' in res.stderr and "not found" in res.stderr, res.stderr
        assert "emu" in res.stderr  # the profiles there are
        assert p.mp not in fuse_mount_points() and daemons(p.mp) == []


@root_only
def test_a_token_file_others_can_read_is_refused(staged, new_emulator):
    emu = new_emulator(seed=None, token=TOKEN)
    with place(emu, token_mode=0o644) as p:
        fstab = os.path.join(p.dir, "fstab")
        with open(fstab, "w") as f:
            f.write(f"emu {p.mp} scriptumfs _netdev,{p.opts()} 0 0\n")
        res = run_cmd(["mount", "-T", fstab, p.mp], env=mount_env())
        assert res.returncode == 32
        assert p.token in res.stderr, res.stderr
        assert "readable by group or others" in res.stderr and "chmod 600" in res.stderr
        assert TOKEN not in res.stderr
        assert p.mp not in fuse_mount_points() and daemons(p.mp) == []


@root_only
def test_a_missing_token_file_is_refused(staged, new_emulator):
    emu = new_emulator(seed=None, token=TOKEN)
    with place(emu) as p:
        missing = os.path.join(p.dir, "no-such-token")
        res = run_cmd(["mount", "-t", "scriptumfs", emu.url, p.mp, "-o",
                       p.opts(f"token_file={missing}")], env=mount_env())
        assert res.returncode == 32
        assert missing in res.stderr and "No such file" in res.stderr, res.stderr
        assert p.mp not in fuse_mount_points() and daemons(p.mp) == []


@root_only
def test_an_endpoint_that_does_not_answer_is_refused(staged):
    with place() as p:
        res = run_cmd(["mount", "-t", "scriptumfs", "emu", p.mp, "-o", p.opts()],
                      env=mount_env())
        assert res.returncode == 32
        assert "http://127.0.0.1:1" in res.stderr and "connect" in res.stderr, res.stderr
        assert p.mp not in fuse_mount_points() and daemons(p.mp) == []


@root_only
def test_an_unknown_option_is_refused(staged, new_emulator):
    emu = new_emulator(seed=None)
    with place(emu) as p:
        res = run_cmd(["mount", "-t", "scriptumfs", emu.url, p.mp, "-o",
                       p.opts("no_such_option")], env=mount_env())
        assert res.returncode == 32
        assert "no_such_option" in res.stderr, res.stderr
        assert p.mp not in fuse_mount_points() and daemons(p.mp) == []


@root_only
def test_a_fake_mount_shows_the_command_and_mounts_nothing(staged):
    with place() as p:
        res = run_cmd(["mount", "-f", "-v", "-t", "scriptumfs", "emu", p.mp, "-o",
                       p.opts("_netdev", "x-systemd.idle-timeout=1min", "allow_other")],
                      env=mount_env())
        assert res.returncode == 0, res.stderr
        exe = os.path.join(staged, "usr/local/bin/scriptumfs")
        assert f"mount.scriptumfs: {exe} emu {p.mp} -o {p.opts('allow_other')}\n" \
            in res.stderr, res.stderr
        assert p.mp not in fuse_mount_points() and daemons(p.mp) == []


def test_the_helper_says_how_it_is_used():
    helper = os.path.join(TOP, "mount-helper", "mount.scriptumfs")
    for args in ([], ["emu"], ["emu", "/mnt", "-q"], ["emu", "/mnt", "/x"]):
        res = run_cmd([helper, *args])
        assert res.returncode == 1, args
        assert "usage: mount.scriptumfs SOURCE MOUNTPOINT" in res.stderr, (args, res.stderr)
    res = run_cmd([helper, "emu", "/mnt", "-t", "fuse.sshfs"])
    assert res.returncode == 1 and "cannot mount type fuse.sshfs" in res.stderr, res.stderr


def test_the_helper_looks_for_scriptumfs_beside_it_then_on_path(tmp_path):
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    helper = sbin / "mount.scriptumfs"
    shutil.copy(os.path.join(TOP, "mount-helper", "mount.scriptumfs"), helper)
    if shutil.which("scriptumfs", path="/usr/bin:/bin"):
        pytest.skip("a scriptumfs is installed in /usr/bin or /bin")
    env = dict(os.environ, PATH="/usr/bin:/bin")
    res = run_cmd([str(helper), "emu", "/mnt", "-fv"], env=env)
    assert res.returncode == 2
    assert "scriptumfs is neither in" in res.stderr and str(tmp_path / "bin") in res.stderr
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(os.path.join(BUILD, "scriptumfs"), other / "scriptumfs")
    env["PATH"] = f"{other}:/usr/bin:/bin"
    res = run_cmd([str(helper), "emu", "/mnt", "-fv"], env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr == f"mount.scriptumfs: {other}/scriptumfs emu /mnt\n"
    (tmp_path / "bin").mkdir()
    os.symlink(os.path.join(BUILD, "scriptumfs"), tmp_path / "bin" / "scriptumfs")
    res = run_cmd([str(helper), "emu", "/mnt", "-fv"], env=env)
    assert res.stderr == f"mount.scriptumfs: {tmp_path}/bin/scriptumfs emu /mnt\n"
