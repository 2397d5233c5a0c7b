"""Rank-generic geometry: output sizes and TensorFlow's 'same' padding, per spatial axis, for any number of
axes (Flax's ``_Conv`` is the model: one rule per axis, padding one ``(before, after)`` pair per axis). Pure Python.

* convolution: ``out = floor((n + p0 + p1 - d*(k-1) - 1) / s) + 1``;
* TensorFlow ``same``: ``out = ceil(n / s)``, total padding ``max((out-1)*s + d*(k-1) + 1 - n, 0)``, the smaller
  half before (top/left);
* pooling with ``ceil``: rounded up, minus one if the last window would start past the input and its leading
  padding (PyTorch's ``pooling_output_shape``);
* transposed convolution: ``(n - 1) s - 2 p + d (k - 1) + op + 1`` (PyTorch's ConvTranspose).
"""

from __future__ import annotations

from . import ir


def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) for one spatial dimension."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def same_pads(spatial, kernel, stride, dilation=None) -> ir.Pads:
    """TensorFlow 'same' padding of every spatial axis, flat ``(before, after, ...)``."""
    dilation = dilation or (1,) * len(spatial)
    return tuple(p for axis in zip(spatial, kernel, stride, dilation) for p in same_padding(*axis))


def conv_out(n: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def pool_out(n: int, k: int, s: int, p0: int, p1: int, ceil: bool) -> int:
    span = n + p0 + p1 - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p0:
        out -= 1
    return out


def conv_transpose_out(n: int, k: int, s: int, d: int, p: int, op: int) -> int:
    """PyTorch's ConvTranspose output size: ``(n - 1) s - 2 p + d (k - 1) + op + 1``."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def conv_spatial(spatial, kernel, stride, dilation, pads: ir.Pads) -> ir.Axes:
    """The output size of every spatial axis of a convolution."""
    return tuple(
        conv_out(n, k, s, d, p0, p1)
        for n, k, s, d, (p0, p1) in zip(spatial, kernel, stride, dilation, ir.axis_pairs(pads))
    )


def pool_spatial(spatial, kernel, stride, pads: ir.Pads, ceil: bool) -> ir.Axes:
    """The output size of every spatial axis of a pooling window."""
    return tuple(
        pool_out(n, k, s, p0, p1, ceil) for n, k, s, (p0, p1) in zip(spatial, kernel, stride, ir.axis_pairs(pads))
    )
