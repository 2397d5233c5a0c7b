"""Helpers the generated Keras code may need; the emitter copies the ones a model uses (not imported by archc)."""

import keras
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


class GeluTanh(layers.Layer):
    """GELU with the tanh approximation (PyTorch's GELU(approximate="tanh"))."""

    def call(self, x):
        return ops.gelu(x, approximate=True)


class LayerScale(layers.Layer):
    """A learned per-channel scale (ConvNeXt's layer scale), initialized to ``init``."""

    def __init__(self, init, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.init)
        )

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "init": self.init}


class StochasticDepth(layers.Layer):
    """Stochastic depth, row mode (torchvision.ops.StochasticDepth): the identity in inference; in training each
    sample is zeroed with probability p and the kept ones are scaled by 1 / (1 - p)."""

    def __init__(self, p, **kwargs):
        super().__init__(**kwargs)
        self.p = p
        self.seed = keras.random.SeedGenerator()

    def call(self, x, training=False):
        if not training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        noise = ops.cast(keras.random.uniform(shape, seed=self.seed) < keep, x.dtype)
        return x * noise / keep

    def get_config(self):
        return {**super().get_config(), "p": self.p}


class ChannelShuffle(layers.Layer):
    """Channel shuffle (ShuffleNet): channels as (groups, C / groups), transposed, flattened."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def call(self, x):
        _, h, w, c = x.shape
        x = ops.reshape(x, (-1, h, w, self.groups, c // self.groups))
        x = ops.transpose(x, (0, 1, 2, 4, 3))
        return ops.reshape(x, (-1, h, w, c))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


class ChannelSlice(layers.Layer):
    """Channels [start, stop) of the input (stop None: to the last)."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start : self.stop]

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


class AdaptiveAvgPool2D(layers.Layer):
    """PyTorch's AdaptiveAvgPool2d: output cell i of m (per axis) averages the inputs [floor(i n / m),
    ceil((i + 1) n / m)) of n, at any input size (Keras' own layer is refused by TensorFlow's graph mode
    where an axis pools to or from 1)."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def call(self, x):
        (m, n), (h, w) = self.size, x.shape[1:3]
        if h % m == 0 and w % n == 0:
            return ops.average_pool(x, (h // m, w // n), strides=(h // m, w // n), padding="valid")
        rows = []
        for i in range(m):
            r0, r1 = (i * h) // m, -(-((i + 1) * h) // m)
            cells = [ops.mean(x[:, r0:r1, (j * w) // n : -(-((j + 1) * w) // n)], axis=(1, 2)) for j in range(n)]
            rows.append(ops.stack(cells, axis=1))
        return ops.stack(rows, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}
