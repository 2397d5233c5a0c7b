"""Helpers the generated PyTorch code may need; the emitter copies the ones a model uses (not imported by archc).

The helpers named after a rank (``Conv2dSame``, ``MaxPool2dSame``, ...) are written for 2-D; the emitter writes
them for the model's rank (``Conv1dSame(nn.Conv1d)``, ``Conv3dSame(nn.Conv3d)``): their code is rank-generic."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _same_pad(x, kernel_size, stride, dilation):
    """TensorFlow's 'same' padding for this input's size, in F.pad's order: (left, right, top, bottom) in 2-D."""
    pads = []
    for size, k, s, d in zip(reversed(x.shape[2:]), reversed(kernel_size), reversed(stride), reversed(dilation)):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _pool_pads(x, kernel_size, stride, padding, ceil_mode):
    """A pool's explicit padding at this input's size, in F.pad's order: (padding, extra). ``padding`` is as the
    spec writes it ('same' is TensorFlow's); ``extra`` is what ceil_mode adds after it (PyTorch's rule: the last
    window starts inside the input or its padding before)."""
    sizes = x.shape[2:]
    n = len(sizes)
    kernel_size = kernel_size if isinstance(kernel_size, (list, tuple)) else [kernel_size] * n
    stride = stride if isinstance(stride, (list, tuple)) else [stride] * n
    if padding == "same":
        totals = [max((-(-size // s) - 1) * s + k - size, 0) for size, k, s in zip(sizes, kernel_size, stride)]
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
    for size, k, s, (lo, hi) in zip(sizes, kernel_size, stride, pairs):
        out = (size + lo + hi - k) // s + 1
        if ceil_mode:
            out = -(-(size + lo + hi - k) // s) + 1
            if (out - 1) * s >= size + lo:
                out -= 1
        extra.append(max((out - 1) * s + k - size - lo - hi, 0))
    pad = [p for pair in reversed(pairs) for p in pair]
    return pad, [p for e in reversed(extra) for p in (0, e)]


def _cat_then(layer, *features):
    """Concatenate, then run the layer; under checkpoint() the concatenation is recomputed, not stored."""
    return layer(torch.cat(features, 1))


class _KeepStats:
    """checkpoint() context: when a layer is recomputed for backward, its batch norms must not update
    their running statistics a second time."""

    def __init__(self, layer=None):
        self.norms = [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)] if layer is not None else []

    def __call__(self):
        return _KeepStats(), self  # (context of the forward pass, context of the recomputation)

    def __enter__(self):
        self.saved = [(m.momentum, m.num_batches_tracked.clone()) for m in self.norms]
        for m in self.norms:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, (momentum, tracked) in zip(self.norms, self.saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'same' padding, computed from the input size at run time."""

    def forward(self, x):
        return super().forward(F.pad(x, _same_pad(x, self.kernel_size, self.stride, self.dilation)))


class Conv2dPadded(nn.Conv2d):
    """Conv2d after explicit zero padding ``pad`` = (left, right, top, bottom): PyTorch's own is symmetric."""

    def __init__(self, *args, pad, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))


class Conv2dPadding(nn.Conv2d):
    """Conv2d with the padding a block's param gives it, in any of the spec's forms: 'same' (TensorFlow's, from the
    input size at run time), 'valid', or explicit (zeropad_padding's forms), applied with F.pad: PyTorch's own is
    symmetric."""

    def __init__(self, *args, padding_spec, **kwargs):
        super().__init__(*args, **kwargs)
        self.padding_spec = padding_spec

    def forward(self, x):
        if self.padding_spec == "same":
            pad = _same_pad(x, self.kernel_size, self.stride, self.dilation)
        elif self.padding_spec == "valid":
            pad = (0,) * (2 * len(self.kernel_size))
        else:
            pad = zeropad_padding(self.padding_spec, len(self.kernel_size))
        return super().forward(F.pad(x, pad))


class MaxPool2dSame(nn.MaxPool2d):
    """MaxPool2d with TensorFlow 'same' padding (padded values never win)."""

    def forward(self, x):
        pad = _same_pad(x, self.kernel_size, self.stride, [1] * len(self.stride))  # one entry per axis
        return super().forward(F.pad(x, pad, value=float("-inf")))


class MaxPool2dPadded(nn.Module):
    """Max pooling with any padding (TensorFlow's 'same', asymmetric, more than half the window) and ceil_mode:
    the input padded with -inf (padded values never win), then pooled without padding."""

    def __init__(self, kernel_size, stride, padding, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def forward(self, x):
        pad, extra = _pool_pads(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        x = F.pad(F.pad(x, pad, value=float("-inf")), extra, value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)


class AvgPool2dPadded(nn.Module):
    """Average pooling with any padding (TensorFlow's 'same', asymmetric, more than half the window), ceil_mode and
    count_include_pad either way: each window's sum over the zero-padded input divided by the number of elements
    the average counts (the input's, and the padding's with count_include_pad; never what ceil_mode adds)."""

    def __init__(self, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x):
        pad, extra = _pool_pads(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        ones = torch.ones_like(x[:1, :1])
        count = F.pad(F.pad(ones, pad, value=float(self.count_include_pad)), extra)
        total = F.avg_pool2d(F.pad(F.pad(x, pad), extra), self.kernel_size, self.stride)
        return total / F.avg_pool2d(count, self.kernel_size, self.stride)


class BatchNorm2dNoScale(nn.BatchNorm2d):
    """BatchNorm2d without a learned scale (Keras' scale=False): its weight is a constant buffer of ones, neither a
    parameter nor in the state_dict."""

    def __init__(self, num_features, **kwargs):
        super().__init__(num_features, **kwargs)
        ones = torch.ones_like(self.weight, requires_grad=False)
        del self.weight
        self.register_buffer("weight", ones, persistent=False)


class BatchNorm1dNoScale(nn.BatchNorm1d):
    """BatchNorm1d without a learned scale (Keras' scale=False): its weight is a constant buffer of ones, neither a
    parameter nor in the state_dict."""

    def __init__(self, num_features, **kwargs):
        super().__init__(num_features, **kwargs)
        ones = torch.ones_like(self.weight, requires_grad=False)
        del self.weight
        self.register_buffer("weight", ones, persistent=False)


class BatchNormBiased:
    """Keras' running variance, mixed into a BatchNorm class (``BatchNorm2dBiased(BatchNormBiased,
    nn.BatchNorm2d)``): in training the running variance averages in the biased batch variance, the one that
    normalizes the batch (PyTorch's own averages in the unbiased one, n / (n - 1) times it, n values per
    channel). Inference, and the running mean, are PyTorch's own."""

    def forward(self, x):
        if not (self.training and self.track_running_stats):
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        var, mean = torch.var_mean(x.detach(), dim=[0, *range(2, x.dim())], correction=0)
        self.running_mean.mul_(1.0 - m).add_(mean, alpha=m)
        self.running_var.mul_(1.0 - m).add_(var, alpha=m)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class BatchNorm2dBiased(BatchNormBiased, nn.BatchNorm2d):
    """BatchNorm2d with Keras' running variance (BatchNormBiased)."""


class BatchNorm1dBiased(BatchNormBiased, nn.BatchNorm1d):
    """BatchNorm1d with Keras' running variance (BatchNormBiased)."""


class BatchNorm2dNoScaleBiased(BatchNormBiased, BatchNorm2dNoScale):
    """BatchNorm2d without a learned scale, with Keras' running variance (BatchNormBiased)."""


class BatchNorm1dNoScaleBiased(BatchNormBiased, BatchNorm1dNoScale):
    """BatchNorm1d without a learned scale, with Keras' running variance (BatchNormBiased)."""


class Concat(nn.ModuleDict):
    """Runs each branch on the same input and concatenates the results on channels."""

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.values()], 1)


class Add(nn.ModuleDict):
    """Runs each branch on the same input and adds the results."""

    def forward(self, x):
        branches = list(self.values())
        out = branches[0](x)
        for branch in branches[1:]:
            out = out + branch(x)
        return out


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; no add when ``shortcut`` is None (``nn.Identity()`` is the identity shortcut)."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out


class DenseConnect(nn.ModuleList):
    """Layer i sees the concatenation of the input and all previous outputs; returns all of them."""

    def forward(self, x):
        features = [x]
        for layer in self:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class DenseConnectMemoryEfficient(nn.ModuleList):
    """Layer i sees the concatenation of the input and all previous outputs; returns all of them."""

    def forward(self, x):
        features = [x]
        for layer in self:
            if self.training and torch.is_grad_enabled():
                keep = _KeepStats(layer)
                features.append(checkpoint(_cat_then, layer, *features, use_reentrant=False, context_fn=keep))
            else:
                features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Mul(nn.ModuleDict):
    """Runs each branch on the same input and multiplies the results (a 1 x 1 result broadcasts: gating)."""

    def forward(self, x):
        branches = list(self.values())
        out = branches[0](x)
        for branch in branches[1:]:
            out = out * branch(x)
        return out


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W tensor, at each position (torchvision's LayerNorm2d)."""

    def forward(self, x):
        x = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class PointwiseLinear(nn.Linear):
    """A Linear layer applied to the channels of an N x C x ... tensor at each position."""

    def forward(self, x):
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


class LayerScale(nn.Module):
    """A learned per-channel scale (ConvNeXt's layer scale) on N x C x ... tensors with ``spatial`` axes."""

    def __init__(self, channels, init, spatial=2):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,) + (1,) * spatial, float(init)))

    def forward(self, x):
        return x * self.scale


class Scale(nn.Module):
    """Multiplies by a constant ``factor`` (no parameters): Inception-ResNet's residual scaling."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class StochasticDepth(nn.Module):
    """Stochastic depth, row mode (torchvision.ops.StochasticDepth): the identity in eval; in training each
    sample is zeroed with probability p and the kept ones are scaled by 1 / (1 - p)."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep)

    def extra_repr(self):
        return f"p={self.p}"


class ChannelSlice(nn.Module):
    """Channels [start, stop) of the input."""

    def __init__(self, start, stop):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start : self.stop]

    def extra_repr(self):
        return f"start={self.start}, stop={self.stop}"


def zeropad_padding(padding, rank):
    """A zeropad's padding (an integer, one entry per axis: an integer or [before, after], or in 2-D [top, bottom,
    left, right]) as PyTorch's ZeroPad takes it: (before, after) of the last axis first ((left, right, top, bottom)
    in 2-D)."""
    if isinstance(padding, int):
        pairs = ((padding, padding),) * rank
    elif rank == 2 and len(padding) == 4 and not isinstance(padding[0], (list, tuple)):
        pairs = ((padding[0], padding[1]), (padding[2], padding[3]))
    else:
        pairs = tuple(tuple(p) if isinstance(p, (list, tuple)) else (p, p) for p in padding)
    return tuple(x for pair in reversed(pairs) for x in pair)


class SGDKeras(torch.optim.Optimizer):
    """SGD as keras.optimizers.SGD updates (PyTorch's argument names, Keras' defaults): the velocity
    accumulates -lr * gradient, v = momentum * v - lr * g, and the step is v, or with Nesterov momentum * v
    - lr * g (PyTorch's accumulates gradients and scales them by the step's rate: the same at a constant
    learning rate, not after a schedule changes it); ``weight_decay`` is decoupled, p -= lr * weight_decay *
    p before the step (Keras' weight_decay; PyTorch's adds weight_decay * p to the gradient)."""

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                w, g = p.detach(), p.grad.detach()  # updated in place, outside autograd
                if decay:
                    w.sub_(w * decay * lr)
                if momentum == 0:
                    w.sub_(g * lr)
                    continue
                v = self.state[p].setdefault("velocity", torch.zeros_like(w))
                v.mul_(momentum).sub_(g * lr)
                w.add_(v * momentum - g * lr if group["nesterov"] else v)
        return loss


class RMSpropKeras(torch.optim.Optimizer):
    """RMSprop as keras.optimizers.RMSprop (TensorFlow's) updates (PyTorch's argument names: alpha is Keras'
    rho, eps its epsilon; Keras' defaults: lr 0.001, alpha 0.9, eps 1e-7): eps added inside the square root,
    lr * g / sqrt(v + eps) (PyTorch adds it to the root: at MobileNet's eps 1.0 another optimizer); the
    momentum buffer accumulates that step, lr included; ``weight_decay`` decoupled (p -= lr * weight_decay *
    p before the step, as Keras'). Centered: sqrt(v - mean(g)^2 + eps)."""

    def __init__(self, params, lr=0.001, alpha=0.9, eps=1e-7, weight_decay=0.0, momentum=0.0, centered=False):
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum}
        super().__init__(params, {**defaults, "centered": centered})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                w, g = p.detach(), p.grad.detach()  # updated in place, outside autograd
                if group["weight_decay"]:
                    w.sub_(w * group["weight_decay"] * lr)
                state = self.state[p]
                square_avg = state.setdefault("square_avg", torch.zeros_like(w))
                square_avg.mul_(alpha).add_(g * g * (1.0 - alpha))
                denominator = square_avg + eps
                if group["centered"]:
                    grad_avg = state.setdefault("grad_avg", torch.zeros_like(w))
                    grad_avg.mul_(alpha).add_(g * (1.0 - alpha))
                    denominator = square_avg - grad_avg * grad_avg + eps
                increment = g * lr / denominator.sqrt()
                if momentum > 0:
                    w.sub_(state.setdefault("momentum_buffer", torch.zeros_like(w)).mul_(momentum).add_(increment))
                else:
                    w.sub_(increment)
        return loss
