"""The fuzzer of tests/fuzz.py in CI: 300 seeded cases (about 35 s of CPU), every invariant held.

A long run (figures printed, and kept in <tmp>/archc-fuzz.txt)::

    ARCHC_FUZZ_CASES=10000 .venv/bin/python -m pytest tests/test_fuzz.py -q -s

or, without pytest, ``ARCHC_FUZZ_CASES=10000 nice .venv/bin/python -m tests.fuzz --json figures.json``
(``ARCHC_FUZZ_SEED`` picks another sequence of cases; ``python -m tests.fuzz --case SEED`` prints one case).
"""

from __future__ import annotations

import json
import os

import pytest

from tests import fuzz
from tests.conftest import keep_report

CASES = int(os.environ.get("ARCHC_FUZZ_CASES", "300"))
SEED = int(os.environ.get("ARCHC_FUZZ_SEED", "0"))


def test_fuzzed_specs_are_refused_where_wrong_or_built():
    figures = fuzz.fuzz(CASES, SEED)
    summary = figures.summary()
    text = json.dumps(summary, indent=1, default=str)
    print(text)
    keep_report("fuzz", text.splitlines())
    assert summary["cases"] == CASES
    # the mutations reach both ends: specs that build and specs refused for many different causes
    assert summary["classes"].get("built", 0) >= CASES // 10, summary["classes"]
    assert len(summary["top_refusals"]) >= 10, summary["top_refusals"]
    assert not figures.defects(), "\n\n".join(f"seed {o.seed} {o.cls} {o.ops}\n{o.detail}" for o in figures.defects())


HEAD = "name: fz\ninput: {height: 16, width: 16, channels: 3}\n"


@pytest.fixture
def one_case(monkeypatch, tmp_path):
    """run_case on a given spec text instead of a mutated seed."""

    seeds = iter(range(1000))

    def run(text: str) -> fuzz.Outcome:
        monkeypatch.setattr(fuzz, "make_case", lambda seed, specs, blocks: (text, ["given"]))
        return fuzz.run_case(next(seeds), [], [], tmp_path)

    return run


def test_the_harness_classes_outcomes(one_case, monkeypatch):
    """The invariants can fail: each kind of breach below is classed a defect (or, for the listed known defects,
    known), so a clean run means something."""
    assert one_case(HEAD + "network: [relu]\n").cls == "built"
    assert one_case(HEAD + "network: [reshape]\n").cls == "refused"
    # once a known defect, built by both backends now
    pooled = one_case(HEAD + "network:\n  - avgpool: {kernel: 3, stride: 1, padding: same}\n")
    assert pooled.cls == "built", pooled
    # the last known defect (a block class's running width through a chain of conditional parts): built now
    chain = one_case(fuzz.WIDTH_CHAIN)
    assert chain.cls == "built", chain
    # a known-defect entry excludes a refusal by its backend message; any other refusal is a defect
    from archc.backends.common import Unsupported
    from archc.backends.torch import emitter

    def refuse(self, model):
        raise Unsupported("torch backend: a refusal this test makes up", None)

    monkeypatch.setattr(emitter.TorchEmitter, "emit", refuse, raising=False)
    assert one_case(HEAD + "network: [relu]\n").cls.startswith("defect")
    monkeypatch.setattr(fuzz, "KNOWN_DEFECTS", {"made up": "a refusal this test makes up"})
    assert one_case(HEAD + "network: [relu]\n").cls == "known:made up"
    monkeypatch.undo()

    def broken(self, model):
        raise IndexError("list index out of range")

    monkeypatch.setattr(emitter.TorchEmitter, "emit", broken, raising=False)
    out = one_case(HEAD + "network: [relu]\n")
    assert out.cls.startswith("defect"), out
    assert "exit 3" in out.detail or "escaped" in out.detail or "traceback" in out.detail, out.detail


def test_the_harness_turns_a_hang_into_a_defect(one_case, monkeypatch):
    import archc.cli

    def spin(argv):
        while True:
            pass

    monkeypatch.setattr(fuzz, "CASE_CPU_SECONDS", 0.5)
    monkeypatch.setattr(archc.cli, "main", spin)
    out = one_case(HEAD + "network: [relu]\n")
    assert out.cls == "defect:hang", out
