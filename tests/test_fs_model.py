"""The reference-model test (tests/refmodel.py) under pytest: a few seeds
over several wire variants, each a random sequence of operations on a fresh
emulator and mount, checked against a model built from the API's raw
answers. About 60 s in all; `make soak SECONDS=600` runs it for longer.

A failure prints its seed and the shortest sequence that still fails (the
first failing test of a session is shrunk, within REFMODEL_SHRINK_SECONDS,
25 by default; later ones print their whole sequence). SEED=N and WIRE=spec
narrow the runs to one seed and one wire."""

import json
import os
import shutil

import pytest

import refmodel
from harness import scriptum

pytestmark = pytest.mark.timeout(240)

# One line per wire setting; the spec goes to the emulator as it is
# (--wire <spec>), e.g. "random --wire-seed 3" once the emulator has it.
WIRES = [
    "canonical",
    "snake",
    "random --wire-seed 1",
    "random --wire-seed 2",
    "random,unknownenums,siblings,minimal --wire-seed 3",
]
SEEDS_PER_WIRE = 2

# different seeds for each wire (11, 12 canonical; 21, 22 wrapped; ...)
CASES = [(10 * (i + 1) + j, w) for i, w in enumerate(WIRES) for j in range(1, SEEDS_PER_WIRE + 1)]
if os.environ.get("SEED") or os.environ.get("WIRE"):
    CASES = [(int(os.environ.get("SEED", "11")), os.environ.get("WIRE", "canonical"))]

_shrunk_once = []


@pytest.mark.parametrize("seed,wire", CASES, ids=[f"{s}-{w.replace(' ', '_')}" for s, w in CASES])
def test_random_operations_agree_with_the_model(seed, wire):
    budget = float(os.environ.get("REFMODEL_SHRINK_SECONDS", "25"))
    if _shrunk_once and "REFMODEL_SHRINK_SECONDS" not in os.environ:
        budget = 0  # one shrink a session keeps make check bounded
    done, fail = refmodel.run_seed(seed, wire, shrink_s=budget)
    if fail is not None:
        if budget > 0:
            _shrunk_once.append(seed)
        pytest.fail(fail.report(), pytrace=False)
    assert done > 0


# ---- the harness itself ----

def test_the_model_agrees_with_a_fresh_mount_of_finished_threads():
    """Positive control: seeded finished threads of every kind, read cold
    through a mount, match the model and their --save (so a failure of the
    random runs is not the model's own mistake)."""
    with refmodel.Driver("canonical") as d:
        d.run([refmodel.Op("seed", script=s, status=st, count=1) for s, st in [
            ("echo", "completed"), ("fanout", "completed"), ("approval", "completed"),
            ("strict", "failed"), ("flaky", "failed"), ("fanout", "cancelled"),
            ("nightly", "cancelled")]])
        assert len(d.known) == 7
    assert not d.problems, d.problems


def test_the_model_catches_a_changed_file(tmp_path):
    """Negative control: a saved thread with one byte changed, a file added,
    or a file removed is a Mismatch."""
    with refmodel.Driver("canonical") as d:
        d.run([refmodel.Op("seed", script="fanout", status="completed", count=1)],
              final_quiesce=False)
        tid = d.known[0]
        m = d.model(tid)
        saved = tmp_path / "save"
        r = scriptum(d.emu, "thread", "result", tid, "--save", str(saved))
        assert r.rc == 0, r.err
        d.check_tree(tid, str(saved), m)  # as saved: agrees
        for change in ("output", "summary", "extra", "missing"):
            bad = tmp_path / change
            shutil.copytree(saved, bad)
            if change == "output":
                data = (bad / "output.json").read_bytes()
                (bad / "output.json").write_bytes(data[:-1] + b"x")
            elif change == "summary":
                s = json.loads((bad / "summary.json").read_text())
                s["steps"][3]["status"] = "STEP_STATUS_RUNNING"
                (bad / "summary.json").write_text(json.dumps(s) + "\n")
            elif change == "extra":
                (bad / "error").write_text("boom\n")
            else:
                (bad / "steps" / "2.0.0" / "output.json").unlink()
            with pytest.raises(refmodel.Mismatch):
                d.check_tree(tid, str(bad), m)


def test_delta_debugging_finds_the_minimal_failing_subsequence():
    ops = list(range(40))
    # fails when 7 comes before 31 and 19 is present
    fails = lambda c: 7 in c and 31 in c and 19 in c and c.index(7) < c.index(31)  # noqa: E731
    out, replays, _ = refmodel.ddmin(ops, fails, budget_s=10)
    assert out == [7, 19, 31]
    assert replays < 200


def test_a_wire_spec_goes_to_the_emulator_as_it_is():
    assert refmodel.wire_args("canonical") == ["--wire", "canonical"]
    assert refmodel.wire_args("random --wire-seed 3") == ["--wire", "random", "--wire-seed", "3"]
    assert refmodel.wire_args("") == []
