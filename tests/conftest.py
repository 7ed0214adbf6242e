"""Fixtures shared by the integration tests: emulators on free loopback
ports, started per test module and stopped (and checked) afterwards."""

import pytest

from harness import Emulator


@pytest.fixture(scope="module")
def emulator():
    """An emulator with the demo catalog and threads, shared by a module."""
    emu = Emulator()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def start_emulator():
    """Starts emulators with custom arguments; all stop after the module."""
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
