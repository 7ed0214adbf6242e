"""Fixtures shared by the integration tests: emulators on free loopback
ports, started per test module and stopped (and checked) afterwards."""

import pytest

import harness
from harness import Emulator


@pytest.fixture(autouse=True)
def no_secret_in_outputs(request):
    """No configured secret in anything the CLI or the mount wrote during
    the test (SPEC §7, §9; issue 13): harness.SECRETS scans every output as
    it is produced (the CLI's stdout and stderr, the daemon's log, the
    .scriptumfs/errors and config of every mount before it is unmounted);
    a hit fails the test that produced it, naming the stream, with the
    secret masked. Set up before, and so ended after, every other fixture
    of the test (its mounts are unmounted, and scanned, before)."""
    harness.SECRETS.register_module(request.module)
    harness.SECRETS.begin(request.node.nodeid)
    yield
    hits = harness.SECRETS.end()
    if hits:
        pytest.fail(harness.SecretScan.describe(hits), pytrace=False)


@pytest.fixture(scope="module")
def emulator():
    """An emulator with the demo catalog and threads, shared by a module."""
    emu = Emulator()
    yield emu
    emu.stop()


def emulators():
    """A fixture's body: yields a function that starts emulators with custom
    arguments, then stops them all and fails if one did not exit cleanly."""
    started = []

    def start(*args, **kw):
        emu = Emulator(*args, **kw)
        started.append(emu)
        return emu

    yield start
    errors = []
    for emu in started:
        try:
            emu.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def start_emulator():
    """Starts emulators with custom arguments; all stop after the module."""
    yield from emulators()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test (it still runs in make check)")


@pytest.fixture
def new_emulator():
    """Starts emulators with custom arguments for one test; all are stopped
    (and checked for a clean exit) at its end."""
    yield from emulators()


@pytest.fixture
def emu(new_emulator):
    """An emulator with the demo catalog and no threads (a test module may
    define its own)."""
    return new_emulator(seed=None)


# ---- the mounted tests (tests/test_fs_*.py) ----

@pytest.fixture
def mount_fs(new_emulator):
    """Starts scriptumfs mounts for one test: mount_fs(emu, list_limit=...,
    ...) returns a harness.Mount. Each is unmounted at the end of the test,
    failed or not (before its emulators stop), and the test fails if a
    daemon did not exit cleanly."""
    from harness import Mount

    started = []

    def start(emu, **kw):
        m = Mount(emu, **kw)
        started.append(m)
        return m

    yield start
    errors = []
    for m in reversed(started):
        try:
            m.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def pytest_sessionfinish(session, exitstatus):
    """Whatever a test left mounted (it crashed past its fixture) is
    unmounted before pytest exits."""
    import harness

    left = harness.unmount_leftovers()
    if left:
        print(f"\nunmounted what tests left mounted: {left}")
    # hits outside any test (module fixtures, the unmounts just above) fail
    # the session; the tests' own hits already failed them
    if harness.SECRETS.unclaimed() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The secret check's summary: what was scanned, and every hit."""
    scan = harness.SECRETS
    if not scan.outputs and not scan.hits:
        return
    terminalreporter.write_line(scan.summary())
    for h in scan.hits:
        terminalreporter.write_line("  " + scan.describe([h]), red=True)
    if scan.unclaimed():
        terminalreporter.write_line(f"the session fails: {len(scan.unclaimed())} secret(s) "
                                    "found outside any test", red=True)


@pytest.fixture
def fs(emu, mount_fs):
    """A mount of the test's emulator with the default options."""
    return mount_fs(emu)
