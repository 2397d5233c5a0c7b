"""Helpers the generated Keras code may need; the emitter copies the ones a model uses (not imported by archc)."""

from keras import layers, ops


def _explicit_padding(x, padding, name):
    """Keras has only 'same' and 'valid': other padding becomes a ZeroPadding2D before a 'valid' layer."""
    if isinstance(padding, str):
        return x, padding
    if isinstance(padding, int):
        padding = (padding,) * 4
    elif len(padding) == 2:
        padding = (padding[0], padding[0], padding[1], padding[1])
    if not any(padding):
        return x, "valid"
    top, bottom, left, right = padding
    return layers.ZeroPadding2D(((top, bottom), (left, right)), name=f"{name}_pad")(x), "valid"


def _pool_padding(size, kernel, stride, before, after, ceil):
    """(before, after) padding that makes a 'valid' pool give PyTorch's output size, ceil_mode included."""
    span = size + before + after - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + before:
        out -= 1
    return before, max((out - 1) * stride + kernel - size - before, 0)


class MaxPadding2D(layers.Layer):
    """Pads height and width with -inf, so padded values never win a max-pool (zeros could)."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(p) for p in padding)  # ((top, bottom), (left, right))

    def call(self, x):
        (top, bottom), (left, right) = self.padding
        return ops.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=float("-inf"))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
