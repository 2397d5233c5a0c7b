"""Helpers the generated Keras code may need; the emitter copies the ones a model uses (not imported by archc).

The helpers named after a rank (``MaxPadding2D``, ``AdaptiveAvgPool2D``) are written for 2-D; the emitter writes
them for the model's rank (``MaxPadding1D``, ``MaxPadding3D``): their code is rank-generic."""

import keras
from keras import layers, ops


def _explicit_padding(x, padding, name):
    """Keras has only 'same' and 'valid': other padding becomes a ZeroPadding2D before a 'valid' layer (an integer,
    one entry per spatial axis: an integer or (before, after), or (top, bottom, left, right))."""
    if isinstance(padding, str):
        return x, padding
    rank = len(x.shape) - 2
    if isinstance(padding, int):
        padding = [padding] * rank
    if len(padding) == 4 and rank == 2:
        padding = [padding[:2], padding[2:]]
    pairs = tuple([tuple(p) if isinstance(p, (list, tuple)) else (p, p) for p in padding])
    if not any(sum(pairs, ())):
        return x, "valid"
    zero_padding = {1: layers.ZeroPadding1D, 2: layers.ZeroPadding2D, 3: layers.ZeroPadding3D}[rank]
    return zero_padding(pairs[0] if rank == 1 else pairs, name=f"{name}_pad")(x), "valid"


def _pool_padding(size, kernel, stride, before, after, ceil):
    """(before, after) padding that makes a 'valid' pool give PyTorch's output size, ceil_mode included."""
    span = size + before + after - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + before:
        out -= 1
    return before, max((out - 1) * stride + kernel - size - before, 0)


class MaxPadding2D(layers.Layer):
    """Pads the spatial axes with -inf, so padded values never win a max-pool (zeros could)."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        padding = (padding,) if isinstance(padding[0], int) else padding  # 1-D: (before, after)
        self.padding = tuple(tuple(p) for p in padding)  # ((top, bottom), (left, right)) in 2-D

    def call(self, x):
        return ops.pad(x, ((0, 0), *self.padding, (0, 0)), constant_values=float("-inf"))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class SamePadding2D(layers.Layer):
    """Zero padding as TensorFlow's 'same' pads for a convolution of this kernel, stride and dilation, from the
    input's size (before a convolution run at stride 1 and subsampled: TensorFlow has no kernel for its stride)."""

    def __init__(self, kernel_size, strides, dilation_rate, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides, self.dilation_rate = kernel_size, strides, dilation_rate

    def call(self, x):
        rank = len(x.shape) - 2
        per_axis = [v if isinstance(v, (list, tuple)) else [v] * rank for v in (self.kernel_size, self.strides)]
        dilation = self.dilation_rate if isinstance(self.dilation_rate, (list, tuple)) else [self.dilation_rate] * rank
        pairs = []
        for n, k, s, d in zip(x.shape[1:-1], *per_axis, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        return ops.pad(x, ((0, 0), *pairs, (0, 0)))

    def get_config(self):
        config = {"kernel_size": self.kernel_size, "strides": self.strides, "dilation_rate": self.dilation_rate}
        return {**super().get_config(), **config}


class Subsample2D(layers.Layer):
    """Every stride-th position of each spatial axis (a convolution run at stride 1, subsampled, is the strided
    convolution)."""

    def __init__(self, strides, **kwargs):
        super().__init__(**kwargs)
        self.strides = strides

    def call(self, x):
        rank = len(x.shape) - 2
        strides = self.strides if isinstance(self.strides, (list, tuple)) else [self.strides] * rank
        return x[(slice(None), *[slice(None, None, s) for s in strides])]

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


class Pooling2DPadded(layers.Layer):
    """PyTorch's pooling where Keras has no layer for it: any padding (TensorFlow's 'same', asymmetric, more than
    half the window), ceil_mode (the last window starts inside the input or its padding before), and for averages
    count_include_pad either way. Max pools pad with -inf; averages divide each window's sum over the zero-padded
    input by the number of elements they count (the input's, the padding's with count_include_pad, never what
    ceil_mode adds)."""

    def __init__(self, op, pool_size, strides, padding, ceil_mode=False, count_include_pad=True, **kwargs):
        super().__init__(**kwargs)
        self.op, self.pool_size, self.strides, self.padding = op, pool_size, strides, padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def _pads(self, sizes):
        n = len(sizes)
        kernel = self.pool_size if isinstance(self.pool_size, (list, tuple)) else [self.pool_size] * n
        stride = self.strides if isinstance(self.strides, (list, tuple)) else [self.strides] * n
        padding = self.padding
        if padding == "same":
            totals = [max((-(-size // s) - 1) * s + k - size, 0) for size, k, s in zip(sizes, kernel, stride)]
            pairs = [(t // 2, t - t // 2) for t in totals]
        elif padding == "valid":
            pairs = [(0, 0)] * n
        elif isinstance(padding, int):
            pairs = [(padding, padding)] * n
        elif n == 2 and len(padding) == 4:  # (top, bottom, left, right)
            pairs = [tuple(padding[:2]), tuple(padding[2:])]
        else:
            pairs = [tuple(p) if isinstance(p, (list, tuple)) else (p, p) for p in padding]
        extra = []
        for size, k, s, (lo, hi) in zip(sizes, kernel, stride, pairs):
            out = (size + lo + hi - k) // s + 1
            if self.ceil_mode:
                out = -(-(size + lo + hi - k) // s) + 1
                if (out - 1) * s >= size + lo:
                    out -= 1
            extra.append(max((out - 1) * s + k - size - lo - hi, 0))
        return kernel, stride, pairs, extra

    def call(self, x):
        kernel, stride, pairs, extra = self._pads(x.shape[1:-1])
        padded = ((0, 0), *[(lo, hi + e) for (lo, hi), e in zip(pairs, extra)], (0, 0))
        if self.op == "max":
            x = ops.pad(x, padded, constant_values=float("-inf"))
            return ops.max_pool(x, kernel, strides=stride, padding="valid")
        count = ops.pad(ops.ones_like(x[..., :1]), ((0, 0), *pairs, (0, 0)), constant_values=self.count_include_pad)
        count = ops.pad(count, ((0, 0), *[(0, e) for e in extra], (0, 0)))
        total = ops.average_pool(ops.pad(x, padded), kernel, strides=stride, padding="valid")
        return total / ops.average_pool(count, kernel, strides=stride, padding="valid")

    def get_config(self):
        return {
            **super().get_config(),
            "op": self.op,
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }


class GeluTanh(layers.Layer):
    """GELU with the tanh approximation (PyTorch's GELU(approximate="tanh"))."""

    def call(self, x):
        return ops.gelu(x, approximate=True)


class Gelu(layers.Layer):
    """GELU as PyTorch's GELU(approximate=...): exact ("none") or with the tanh approximation ("tanh")."""

    def __init__(self, approximate="none", **kwargs):
        super().__init__(**kwargs)
        self.approximate = approximate

    def call(self, x):
        return ops.gelu(x, approximate=self.approximate == "tanh")

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}


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
        *spatial, c = x.shape[1:]
        n = len(spatial)
        x = ops.reshape(x, (-1, *spatial, self.groups, c // self.groups))
        x = ops.transpose(x, (*range(n + 1), n + 2, n + 1))
        return ops.reshape(x, (-1, *spatial, c))

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
    where an axis pools to or from 1). A box's mean is the mean over one axis of the means over the others."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size) if isinstance(size, (list, tuple)) else size

    def _size(self, rank):
        return self.size if isinstance(self.size, tuple) else (self.size,) * rank

    def call(self, x):
        spatial = x.shape[1:-1]
        size = self._size(len(spatial))
        window = [n // m for n, m in zip(spatial, size)]
        if [w * m for w, m in zip(window, size)] == list(spatial):
            return ops.average_pool(x, window, strides=window, padding="valid")
        for axis, (n, m) in enumerate(zip(spatial, size), start=1):
            cells = []
            for i in range(m):
                index = (slice(None),) * axis + (slice((i * n) // m, -(-((i + 1) * n) // m)),)
                cells.append(ops.mean(x[index], axis=axis))
            x = ops.stack(cells, axis=axis)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._size(len(input_shape) - 2), input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class Scale(layers.Layer):
    """Multiplies by a constant ``factor`` (no weights): Inception-ResNet's residual scaling."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Resize(layers.Layer):
    """PyTorch's interpolate (nn.Upsample) on channels-last input of any rank, one spatial axis at a time (nearest
    and multilinear interpolation are separable): to ``size``, or by ``scale`` (output floor(n * scale); source
    positions from 1 / scale, as PyTorch computes them), ``mode`` nearest or linear (bilinear, trilinear: linear
    on each axis), ``align_corners`` as PyTorch's."""

    def __init__(self, size=None, scale=None, mode="nearest", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        self.size, self.scale, self.mode, self.align_corners = size, scale, mode, bool(align_corners)

    def _per_axis(self, v, rank):
        return v if isinstance(v, (list, tuple)) else [v] * rank

    def call(self, x):
        spatial = x.shape[1:-1]
        rank = len(spatial)
        for axis, n in enumerate(spatial, start=1):
            if self.size is not None:  # PyTorch: in / out (for nearest a float32 division, as below)
                out = self._per_axis(self.size, rank)[axis - 1]
                ratio = n / out if self.mode != "nearest" else float(ops.cast(n, "float32") / ops.cast(out, "float32"))
            else:  # PyTorch: 1 / scale
                factor = self._per_axis(self.scale, rank)[axis - 1]
                out, ratio = round(n * factor), 1.0 / factor
            if self.mode == "nearest":  # PyTorch's floorf(j * scale), the scale a float32
                scale = ops.cast(ops.convert_to_tensor(ratio, dtype="float64"), "float32")
                index = ops.floor(ops.cast(ops.arange(out), "float32") * scale)
                x = ops.take(x, ops.minimum(ops.cast(index, "int32"), n - 1), axis=axis)
                continue
            if self.align_corners:
                src = [j * (n - 1) / (out - 1) if out > 1 else 0.0 for j in range(out)]
            else:
                src = [max((j + 0.5) * ratio - 0.5, 0.0) for j in range(out)]
            low = [min(int(s), n - 1) for s in src]
            high = [min(i + 1, n - 1) for i in low]
            shape = [1] * (rank + 2)
            shape[axis] = out
            weight = ops.reshape(ops.convert_to_tensor([s - i for s, i in zip(src, low)], dtype=x.dtype), shape)
            x = ops.take(x, low, axis=axis) * (1 - weight) + ops.take(x, high, axis=axis) * weight
        return x

    def compute_output_shape(self, input_shape):
        spatial = input_shape[1:-1]
        if self.size is not None:
            out = self._per_axis(self.size, len(spatial))
        else:
            out = [round(n * f) for n, f in zip(spatial, self._per_axis(self.scale, len(spatial)))]
        return (input_shape[0], *out, input_shape[-1])

    def get_config(self):
        config = {"size": self.size, "scale": self.scale, "mode": self.mode, "align_corners": self.align_corners}
        return {**super().get_config(), **config}


class BatchNormalizationUnbiased(layers.BatchNormalization):
    """BatchNormalization with PyTorch's running variance: in training the moving variance averages in the
    unbiased batch variance, n / (n - 1) times the biased one that normalizes the batch (n values per
    channel); Keras' own layer averages in the biased one. ``momentum`` is Keras': the share of the old
    statistics kept (PyTorch's momentum is one minus it). Inference, the moving mean and masked inputs are
    Keras' own."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # as Keras' layer computes
        axes = [a for a in range(len(x.shape)) if a != self.axis % len(x.shape)]
        mean, variance = ops.moments(x, axes=axes, synchronized=self.synchronized)
        n = ops.cast(ops.size(x) // ops.shape(x)[self.axis], x.dtype)
        keep = self.momentum  # Keras' momentum: the share of the old statistics kept (1 - PyTorch's momentum)
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * keep + mean * (1.0 - keep))
        unbiased = variance * n / (n - 1.0)
        self.moving_variance.assign(ops.cast(self.moving_variance, x.dtype) * keep + unbiased * (1.0 - keep))
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(
            x, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)


class SGDTorch(keras.optimizers.SGD):
    """SGD as torch.optim.SGD updates (Keras' argument names, PyTorch's defaults: learning rate 0.001):
    ``weight_decay`` is added to the gradient (L2, every trainable variable; Keras' own weight_decay is
    decoupled: p -= lr * wd * p); the velocity accumulates gradients, b = momentum * b + (1 - dampening) * g
    (b = g at the first step), and the step is lr * b, or with Nesterov lr * (g + momentum * b) (Keras'
    accumulates -lr * g: the same at a constant learning rate, not after a schedule changes it)."""

    def __init__(self, learning_rate=0.001, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.dampening = dampening
        self.torch_weight_decay = weight_decay

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        if self.torch_weight_decay:
            g = g + variable * self.torch_weight_decay
        if self.momentum != 0:
            b = self.momentums[self._get_variable_index(variable)]
            first = ops.equal(self.iterations, 0)
            self.assign(b, ops.where(first, g, b * self.momentum + g * (1.0 - self.dampening)))
            g = g + b * self.momentum if self.nesterov else b
        self.assign_sub(variable, g * lr)

    def get_config(self):
        return {**super().get_config(), "dampening": self.dampening, "weight_decay": self.torch_weight_decay}


class RMSpropTorch(keras.optimizers.RMSprop):
    """RMSprop as torch.optim.RMSprop updates (Keras' argument names: rho is PyTorch's alpha, epsilon its
    eps; PyTorch's defaults: learning rate 0.01, rho 0.99, epsilon 1e-8): epsilon added to the square root
    of the mean square (Keras adds it inside the root), ``weight_decay`` added to the gradient (L2; Keras'
    own is decoupled), the momentum buffer accumulates g / (sqrt(v) + epsilon) and the step is lr times it
    (Keras' accumulates lr * g / ...: the same at a constant learning rate). Centered: sqrt(v - mean(g)^2) +
    epsilon."""

    def __init__(
        self, learning_rate=0.01, rho=0.99, momentum=0.0, epsilon=1e-8, centered=False, weight_decay=0.0, **kwargs
    ):
        super().__init__(
            learning_rate=learning_rate, rho=rho, momentum=momentum, epsilon=epsilon, centered=centered, **kwargs
        )
        self.torch_weight_decay = weight_decay

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        if self.torch_weight_decay:
            g = g + variable * self.torch_weight_decay
        i = self._get_variable_index(variable)
        square_avg = self._velocities[i]
        self.assign(square_avg, square_avg * self.rho + g * g * (1.0 - self.rho))
        if self.centered:
            grad_avg = self._average_gradients[i]
            self.assign(grad_avg, grad_avg + (g - grad_avg) * (1.0 - self.rho))
            avg = ops.sqrt(square_avg - grad_avg * grad_avg) + self.epsilon
        else:
            avg = ops.sqrt(square_avg) + self.epsilon
        if self.momentum > 0:
            b = self._momentums[i]
            self.assign(b, b * self.momentum + g / avg)
            self.assign_sub(variable, b * lr)
        else:
            self.assign_sub(variable, g / avg * lr)

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.torch_weight_decay}


class TruncatedNormalBounded(keras.initializers.RandomUniform):
    """A normal distribution (mean, stddev) truncated to [low, high] at any bounds, drawn as PyTorch's
    ``nn.init.trunc_normal_`` draws it: uniform between the bounds' CDFs (here 2 CDF - 1, an erf), then the inverse
    CDF (erfinv), clipped to the bounds. Keras' own TruncatedNormal truncates at 2 stddevs only."""

    def __init__(self, mean=0.0, stddev=1.0, low=-2.0, high=2.0, seed=None):
        scale = stddev * 2.0**0.5
        lo, hi = (float(ops.convert_to_numpy(ops.erf((v - mean) / scale))) for v in (low, high))
        super().__init__(minval=lo, maxval=hi, seed=seed)
        self.mean, self.stddev, self.low, self.high = mean, stddev, low, high

    def __call__(self, shape, dtype=None):
        u = super().__call__(shape, dtype=dtype)
        return ops.clip(ops.erfinv(u) * (self.stddev * 2.0**0.5) + self.mean, self.low, self.high)

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k not in ("minval", "maxval")}
        return {**config, "mean": self.mean, "stddev": self.stddev, "low": self.low, "high": self.high}


def torch_fan_in(channels, kernel, rank):
    """PyTorch's fan-in of a convolution's weight: its input channels (per group) times its kernel's size (an
    integer, or one per spatial axis); PyTorch's default bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    for k in kernel if isinstance(kernel, (list, tuple)) else [kernel] * rank:
        channels *= k
    return channels


def transpose_output_padding(padding, output_padding, rank):
    """Keras' output_padding for PyTorch's transposed conv (padding p, output_padding op, per axis or one for all):
    the 'valid' full output gets max(op - p, 0) more positions at its end, then transpose_cropping's crop."""
    pairs = zip(*(v if isinstance(v, (list, tuple)) else [v] * rank for v in (padding, output_padding)))
    return tuple(max(op - p, 0) for p, op in pairs)


def transpose_cropping(padding, output_padding, rank):
    """What Cropping removes from the full output for PyTorch's padding: p before, max(p - op, 0) after."""
    pairs = zip(*(v if isinstance(v, (list, tuple)) else [v] * rank for v in (padding, output_padding)))
    crop = tuple((p, max(p - op, 0)) for p, op in pairs)
    return crop[0] if rank == 1 else crop


def zeropad_padding(padding, rank):
    """A zeropad's padding (an integer, one entry per axis: an integer or [before, after], or in 2-D [top, bottom,
    left, right]) as Keras' ZeroPadding takes it: a (before, after) pair per axis, the pair alone in 1-D."""
    if isinstance(padding, int):
        pairs = ((padding, padding),) * rank
    elif rank == 2 and len(padding) == 4 and not isinstance(padding[0], (list, tuple)):
        pairs = ((padding[0], padding[1]), (padding[2], padding[3]))
    else:
        pairs = tuple(tuple(p) if isinstance(p, (list, tuple)) else (p, p) for p in padding)
    return pairs[0] if rank == 1 else pairs
