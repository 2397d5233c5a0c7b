"""Checks of evaluated attribute values, shared by the lowering and the registry of kinds (:mod:`archc.ops`).

Each check returns the value normalized (a per-axis tuple, a float) or raises a located :class:`ArchcError` whose
``check`` predicate lets the lowering explain which param a bad value came from.
"""

from __future__ import annotations

import math

from . import ir
from .errors import ArchcError

MAX_CHANNELS = 1 << 24
MAX_SPATIAL = 1 << 16


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def good_pos(v) -> bool:
    """A positive integer (or a list of them: a [height, width] param read by a kernel)."""
    if isinstance(v, (list, tuple)):
        return bool(v) and all(good_pos(x) for x in v)
    return is_int(v) and v >= 1


def pos(v, what, loc) -> int:
    if not is_int(v) or v < 1:
        raise ArchcError(f"{what} must be a positive integer, got {v!r}", loc, attr=what, check=good_pos)
    return v


def chan(v: int, loc) -> int:
    if v > MAX_CHANNELS:
        raise ArchcError(f"{v} channels is more than archc accepts ({MAX_CHANNELS})", loc)
    return v


def nonneg(v, what, loc) -> int:
    if not is_int(v) or v < 0:
        raise ArchcError(
            f"{what} must be a non-negative integer, got {v!r}", loc, attr=what, check=lambda x: is_int(x) and x >= 0
        )
    return v


def axes(v, what, loc, n: int, least: int = 1) -> ir.Axes:
    """One integer >= ``least`` (1 or 0) per spatial axis, from an integer or a list of ``n``."""
    one = pos if least == 1 else nonneg
    if isinstance(v, (list, tuple)) and len(v) == n:
        out = tuple(one(x, what, loc) for x in v)
    elif isinstance(v, (list, tuple)):
        names = ", ".join(ir.SPATIAL_NAMES.get(n, ()))
        raise ArchcError(
            f"{what} must be an integer or a list of {n} (one per spatial axis: {names}), got {v!r}", loc, attr=what
        )
    else:
        out = (one(v, what, loc),) * n
    if max(out) > MAX_SPATIAL:
        raise ArchcError(f"{what}={max(out)} is too large", loc)
    return out


def scales(v, what, loc, n: int) -> tuple[float, ...]:
    """One positive finite number per spatial axis, from a number or a list of ``n``."""
    if isinstance(v, (list, tuple)) and len(v) != n:
        names = ", ".join(ir.SPATIAL_NAMES.get(n, ()))
        raise ArchcError(
            f"{what} must be a number or a list of {n} (one per spatial axis: {names}), got {v!r}", loc, attr=what
        )
    out = tuple(number(x, what, loc) for x in (v if isinstance(v, (list, tuple)) else [v] * n))
    if not all(0 < x <= MAX_SPATIAL for x in out):
        raise ArchcError(f"{what} must be positive, got {v!r}", loc, attr=what)
    return out


def pads(v, loc, n: int) -> ir.Pads:
    """Flat ``(before, after)`` per spatial axis from an integer, one entry per axis (an integer or
    [before, after]), or in 2-D [top, bottom, left, right]."""

    def nn(x):
        if not is_int(x) or x < 0 or x > MAX_SPATIAL:
            raise ArchcError(f"padding must be non-negative integers, got {x!r}", loc, attr="padding", check=good_pad)
        return x

    if is_int(v):
        return (nn(v),) * (2 * n)
    if isinstance(v, (list, tuple)) and len(v) == n:
        out = []
        for x in v:
            if isinstance(x, (list, tuple)) and len(x) == 2:
                out += [nn(x[0]), nn(x[1])]
            elif isinstance(x, (list, tuple)):
                break
            else:
                out += [nn(x), nn(x)]
        else:
            return tuple(out)
    if n == 2 and isinstance(v, (list, tuple)) and len(v) == 4 and all(not isinstance(x, (list, tuple)) for x in v):
        return tuple(nn(x) for x in v)
    forms = {
        1: "[length] or [[before, after]]",
        2: "[h, w], [[top, bottom], [left, right]] or [top, bottom, left, right]",
        3: "[d, h, w] or [[before, after], [before, after], [before, after]]",
    }
    raise ArchcError(
        f"padding must be 'same', 'valid', an integer, {forms.get(n, 'one entry per spatial axis')}; got {v!r}",
        loc,
        attr="padding",
    )


def good_pad(v) -> bool:
    if isinstance(v, (list, tuple)):
        return bool(v) and all(good_pad(x) for x in v)
    return v in ("same", "valid") or (is_int(v) and 0 <= v <= MAX_SPATIAL)


def plain(v, what, loc, depth=0):
    """Block arguments reach generated code as literals: only finite numbers, bools, strings, lists."""
    if isinstance(v, (list, tuple)) and depth < 8:
        for x in v:
            plain(x, what, loc, depth + 1)
    elif isinstance(v, float) and not math.isfinite(v):
        raise ArchcError(f"{what} must be a finite number, got {v}", loc)
    elif not isinstance(v, (bool, int, float, str)):
        raise ArchcError(f"{what} must be a number, bool, string or list, got {type(v).__name__}", loc)


def is_bool(v) -> bool:
    return isinstance(v, bool)


def boolean(v, what, loc) -> bool:
    if not isinstance(v, bool):
        raise ArchcError(f"{what} must be true or false, got {v!r}", loc, attr=what, check=is_bool)
    return v


def number(v, what, loc) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        hint = ""
        try:
            float(v)
            hint = f" (YAML reads {v} as a string: write it with a dot, e.g. 1.0e-5)"
        except (TypeError, ValueError):
            pass
        raise ArchcError(f"{what} must be a number, got {v!r}{hint}", loc, attr=what, check=is_finite)
    if not math.isfinite(v):
        raise ArchcError(f"{what} must be a finite number, got {v}", loc, attr=what, check=is_finite)
    return float(v)


def is_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
