"""Input sizes for the tests that run every spec in specs/: the spec's own size where the model is light, a
small one where it is heavy (VGG, ResNet-152, EfficientNet-B5..B7, ...), so the suite stays within CI's
time on 2 cores. Counts of these models do not depend on the input size (adaptive pools before their
classifiers); shapes and numbers are checked at the small size as at any other. Full-size numbers of the
zoo against torchvision are in tests/test_torchvision.py.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from archc.analysis import Report, analyze
from archc.errors import ArchcError
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
HEAVY_MACS = 6.0e9  # multiply-accumulates of one image at the spec's size
HEAVY_PARAMS = 40_000_000
SMALL = (64, 75, 97, 128, 160)  # the first of these a heavy spec compiles at is its small size
SMALL_CLIP = (4, 32)  # a heavy 3-D spec's small clip: 4 frames of 32 x 32
SECOND_INPUT = ["input.height=161", "input.width=192", "input.channels=1"]


@functools.cache
def spec_report(spec: str) -> Report:
    return analyze(compile_spec(spec))


def heavy(spec: str) -> bool:
    """Checked as a heavy model: over the limits above, or a keras.applications twin (``*_keras.yaml``: the
    same families as torchvision's specs, in keras.applications' layout; its torch and Keras models are
    compared with keras.applications' own numbers in tests/test_keras_applications.py)."""
    r = spec_report(spec)
    big = r.macs > HEAVY_MACS or r.total > HEAVY_PARAMS or math.prod(r.input_shape[:-1]) > 300 * 300
    return big or Path(spec).stem.endswith("_keras")


def rank(spec: str) -> int:
    """The spec's spatial axes: 1 (length), 2 (height, width) or 3 (depth, height, width)."""
    return len(spec_report(spec).input_shape) - 1


@functools.cache
def small_size(spec: str) -> int:
    for s in SMALL:
        try:
            compile_spec(spec, [f"input.height={s}", f"input.width={s}"])
            return s
        except ArchcError:
            continue
    raise AssertionError(f"{spec} compiles at none of {SMALL}")


def check_sets(spec: str) -> list[str]:
    """``--set`` overrides for checks "at the spec's size": none, or a small input for a heavy spec."""
    if not heavy(spec):
        return []
    if rank(spec) == 3:
        clip, size = SMALL_CLIP
        return [f"input.depth={clip}", f"input.height={size}", f"input.width={size}"]
    if rank(spec) == 1:
        return [f"input.length={spec_report(spec).input_shape[0] // 4}"]
    s = small_size(spec)
    return [f"input.height={s}", f"input.width={s}"]


def second_sets(spec: str) -> list[str]:
    """A second input with one channel: 161 x 192 x 1 (a 1-D spec: a longer odd length; a 3-D one: a small odd
    clip), or a small odd size for a heavy spec."""
    if rank(spec) == 3:
        clip, size = SMALL_CLIP
        return [f"input.depth={clip + 1}", f"input.height={size + 3}", f"input.width={size + 10}", "input.channels=1"]
    if rank(spec) == 1:
        return [f"input.length={spec_report(spec).input_shape[0] // 4 + 1001}", "input.channels=1"]
    if grows(spec):  # a generator (DCGAN's 1 x 1 -> 64 x 64): a small odd input, its output is already large
        return ["input.height=2", "input.width=3", "input.channels=1"]
    if not heavy(spec):
        return SECOND_INPUT
    s = small_size(spec)
    return [f"input.height={s + 3}", f"input.width={s + 10}", "input.channels=1"]


def grows(spec: str) -> bool:
    """Whether a 2-D spec's main output is a feature map larger than its input (a generator, which a 161 x 192
    input would make thousands of pixels wide)."""
    report = spec_report(spec)
    out = next(iter(report.outputs.values()))
    return len(out) == 3 and out[0] * out[1] > report.input_shape[0] * report.input_shape[1]


@functools.cache
def check_report(spec: str) -> Report:
    return analyze(compile_spec(spec, check_sets(spec)))
