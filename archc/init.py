"""Weight initialization: the schemes a spec's ``init:`` names, resolved per layer to one distribution.

A scheme is what papers and frameworks write: He et al. 2015 ("Delving Deep into Rectifiers": kaiming normal /
uniform), Glorot & Bengio 2010 (xavier / glorot), a fixed normal, truncated normal, uniform or constant, Keras'
variance scaling, and ``torch_default``: what PyTorch's layers draw when nothing initializes them
(``reset_parameters``: a conv / linear weight kaiming-uniform with ``a = sqrt(5)``, i.e. U(-1/sqrt(fan_in),
1/sqrt(fan_in)), its bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the weight's fan-in; a norm's weight 1, bias 0).

Fans are PyTorch's, for every backend (:func:`fans`): for a conv weight (out, in / groups, *k), fan_in =
in / groups * prod(k) and fan_out = out * prod(k); a depthwise conv is PyTorch's conv with groups = channels;
a transposed conv's weight is (in, out / groups, *k), so fan_in = out / groups * prod(k) (PyTorch reads dim 1).
A backend whose framework computes other fans (Keras' DepthwiseConv2D) writes the distribution so that it is the
same (:mod:`backends.keras.init`).

Every scheme resolves, for one tensor of one layer, to a :class:`Dist`: normal, uniform, truncated normal or
constant with numbers (:func:`dist`), which the tests check fresh weights against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import ir
from .errors import ArchcError

TENSORS = ("weight", "bias")  # PyTorch's names; a norm's weight is its scale (gamma), its bias its shift (beta)
NONLINEARITIES = ("linear", "conv", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
MODES = ("fan_in", "fan_out")
VS_MODES = ("fan_in", "fan_out", "fan_avg")
VS_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")
# Keras' truncated normal of variance scaling: the std of N(0, 1) truncated to [-2, 2] is this (Keras' constant)
TRUNCATED_STD = 0.87962566103423978
# a truncated normal whose bounds are at least this many stds from its mean is written as a normal where a framework
# cannot truncate at absolute bounds: the two differ with probability 2 * Phi(-8) < 1.3e-15 per weight
UNTRUNCATED_AT = 8.0
# a truncated normal whose bounds are closer than this (in stds) is taken as the uniform between them: its std to
# within 1e-5 relative for bounds within 10 stds of the mean (the moments' formulas cancel there)
NARROW = 1e-3

# scheme -> its params and their defaults (PyTorch's where PyTorch has the scheme); None: required
SCHEMES: dict[str, dict] = {
    "torch_default": {},
    "kaiming_normal": {"mode": "fan_in", "nonlinearity": "leaky_relu", "a": 0.0},
    "kaiming_uniform": {"mode": "fan_in", "nonlinearity": "leaky_relu", "a": 0.0},
    "xavier_normal": {"gain": 1.0},
    "xavier_uniform": {"gain": 1.0},
    "glorot_normal": {"gain": 1.0},  # = xavier_normal (untruncated, as PyTorch's; not Keras' truncated glorot_normal)
    "glorot_uniform": {"gain": 1.0},  # = xavier_uniform
    "variance_scaling": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},  # Keras' semantics
    "normal": {"mean": 0.0, "std": 1.0},
    "trunc_normal": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},  # PyTorch's: absolute bounds a, b
    "uniform": {"a": 0.0, "b": 1.0},
    "constant": {"value": None},
    "zeros": {},
    "ones": {},
}
SCHEME_DOCS = {
    "torch_default": "what PyTorch's layer draws by itself (reset_parameters): conv / dense / conv_transpose weight "
    "and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); norm weight 1, bias 0",
    "kaiming_normal": "He et al. 2015: N(0, gain / sqrt(fan)), fan = fan_in or fan_out (mode), gain of nonlinearity "
    "(and a, leaky_relu's slope)",
    "kaiming_uniform": "He et al. 2015: U(-b, b), b = gain * sqrt(3 / fan)",
    "xavier_normal": "Glorot & Bengio 2010: N(0, gain * sqrt(2 / (fan_in + fan_out)))",
    "xavier_uniform": "Glorot & Bengio 2010: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))",
    "glorot_normal": "xavier_normal (untruncated)",
    "glorot_uniform": "xavier_uniform (Keras' default kernel initializer)",
    "variance_scaling": "Keras' VarianceScaling: variance scale / fan (fan_in, fan_out or their mean fan_avg); "
    "truncated_normal: N(0, sqrt(scale / fan) / 0.8796) truncated at 2 stds, untruncated_normal, or uniform",
    "normal": "N(mean, std)",
    "trunc_normal": "N(mean, std) truncated to [a, b] (absolute bounds, PyTorch's trunc_normal_)",
    "uniform": "U(a, b)",
    "constant": "every element = value",
    "zeros": "every element 0",
    "ones": "every element 1",
}
FAN_SCHEMES = frozenset(
    {"kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "glorot_normal", "glorot_uniform",
     "variance_scaling"}
)  # fmt: skip

# the kinds with initialized tensors; conv-like: a weight with fans, a bias; norm: a scale and a shift
CONV_LIKE = ("conv", "dwconv", "conv_transpose", "dense")
NORMS = ("bn", "layernorm", "groupnorm")
KINDS = CONV_LIKE + NORMS


@dataclass(frozen=True)
class Init:
    """A scheme with its params (all of them, defaults filled in)."""

    scheme: str
    params: tuple[tuple[str, object], ...] = ()

    def p(self, key: str):
        return dict(self.params)[key]

    def __str__(self) -> str:
        if not self.params:
            return self.scheme
        return f"{self.scheme}({', '.join(f'{k}={v}' for k, v in self.params)})"


TORCH_DEFAULT = Init("torch_default")


def builtin(kind: str) -> dict[str, Init]:
    """archc's own scheme for a kind where the spec says nothing: PyTorch's defaults, in every backend."""
    return {"weight": TORCH_DEFAULT, "bias": TORCH_DEFAULT}


def make(scheme: str, params: dict, loc=None, where: str = "") -> Init:
    """An :class:`Init` from a scheme name and its params (evaluated numbers and strings), checked."""
    if scheme not in SCHEMES:
        from .errors import suggest

        raise ArchcError(
            f"unknown init scheme '{scheme}'{suggest(scheme, SCHEMES)} (schemes: {', '.join(SCHEMES)})", loc
        )
    spec = SCHEMES[scheme]
    for k in params:
        if k not in spec:
            raise ArchcError(
                f"init scheme '{scheme}' has no param '{k}' (its params: {', '.join(spec) or 'none'})", loc
            )
    out = {}
    for k, default in spec.items():
        v = params.get(k, default)
        if v is None:
            raise ArchcError(f"init scheme '{scheme}' needs param '{k}'", loc)
        if k in ("mode",):
            choices = VS_MODES if scheme == "variance_scaling" else MODES
            if v not in choices:
                raise ArchcError(f"{scheme} mode must be one of {', '.join(choices)}, got {v!r}", loc)
        elif k == "nonlinearity":
            if v not in NONLINEARITIES:
                raise ArchcError(f"nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {v!r}", loc)
        elif k == "distribution":
            if v not in VS_DISTRIBUTIONS:
                raise ArchcError(f"distribution must be one of {', '.join(VS_DISTRIBUTIONS)}, got {v!r}", loc)
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ArchcError(f"{scheme} {k} must be a number, got {v!r}", loc)
            v = float(v)
        out[k] = v
    if scheme in ("normal", "trunc_normal") and out["std"] <= 0:
        raise ArchcError(f"{scheme} std must be positive, got {out['std']}", loc)
    if scheme == "trunc_normal" and not out["a"] < out["b"]:
        raise ArchcError(f"trunc_normal needs a < b, got a={out['a']}, b={out['b']}", loc)
    if scheme == "uniform" and not out["a"] < out["b"]:
        raise ArchcError(f"uniform needs a < b, got a={out['a']}, b={out['b']}", loc)
    if scheme == "variance_scaling" and out["scale"] <= 0:
        raise ArchcError(f"variance_scaling scale must be positive, got {out['scale']}", loc)
    return Init(scheme, tuple(out.items()))


def check_tensor(kind: str, tensor: str, init: Init, loc) -> None:
    """A fan-based scheme needs a tensor with fans: a conv / dense weight (PyTorch refuses it on a 1-D tensor)."""
    if tensor not in TENSORS:
        raise ArchcError(f"'{kind}' has no tensor '{tensor}' to initialize (its tensors: weight, bias)", loc)
    if init.scheme in FAN_SCHEMES and not (kind in CONV_LIKE and tensor == "weight"):
        raise ArchcError(
            f"{init.scheme} needs fans, which a {kind} {tensor} (one value per channel) has not; use a fixed "
            "scheme (zeros, ones, constant, normal, uniform, trunc_normal) or torch_default",
            loc,
        )


# ---------------------------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class Dist:
    """One tensor's distribution: ``normal`` (mean, std), ``uniform`` [low, high], ``trunc_normal`` (mean, std of
    the normal before truncation, absolute bounds low, high), ``constant`` (mean)."""

    kind: str
    mean: float = 0.0
    std: float = 0.0
    low: float = 0.0
    high: float = 0.0

    def sd(self) -> float:
        """The standard deviation of the values drawn."""
        if self.kind == "normal":
            return self.std
        if self.kind == "uniform":
            return (self.high - self.low) / math.sqrt(12)
        if self.kind == "constant":
            return 0.0
        al, be = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        if be - al < NARROW:  # the density is flat across bounds this close: a uniform's (the formula cancels)
            return (self.high - self.low) / math.sqrt(12)
        z = _phi_cdf(be) - _phi_cdf(al)
        t = (al * _phi(al) - be * _phi(be)) / z
        m = (_phi(al) - _phi(be)) / z
        return self.std * math.sqrt(1 + t - m * m)

    def expected_mean(self) -> float:
        if self.kind == "uniform":
            return (self.low + self.high) / 2
        if self.kind == "trunc_normal":
            al, be = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
            if be - al < NARROW:
                return (self.low + self.high) / 2
            return self.mean + self.std * (_phi(al) - _phi(be)) / (_phi_cdf(be) - _phi_cdf(al))
        return self.mean


def _phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _phi_cdf(x: float) -> float:
    return (1 + math.erf(x / math.sqrt(2))) / 2


def gain(nonlinearity: str, a: float) -> float:
    """PyTorch's ``nn.init.calculate_gain``."""
    if nonlinearity in ("linear", "conv", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    return 3.0 / 4  # selu


def variance_scale(init: Init) -> tuple[float, str, str]:
    """A fan-based scheme as Keras' VarianceScaling (scale, mode, distribution): the variance is scale / fan."""
    s = init.scheme
    if s in ("kaiming_normal", "kaiming_uniform"):
        nl, a = init.p("nonlinearity"), init.p("a")
        scale = {"relu": 2.0, "leaky_relu": 2.0 / (1 + a * a), "tanh": 25.0 / 9, "selu": 9.0 / 16}.get(nl, 1.0)
        return scale, init.p("mode"), "untruncated_normal" if s == "kaiming_normal" else "uniform"
    if s in ("xavier_normal", "glorot_normal", "xavier_uniform", "glorot_uniform"):
        g = init.p("gain")
        return g * g, "fan_avg", "untruncated_normal" if s.endswith("normal") else "uniform"
    if s == "variance_scaling":
        return init.p("scale"), init.p("mode"), init.p("distribution")
    raise ValueError(s)


def fans(node: ir.Node) -> tuple[int, int]:
    """PyTorch's (fan_in, fan_out) of a layer's weight (see the module's docstring)."""
    if isinstance(node, ir.Dense):
        return node.in_features, node.out_features
    if isinstance(node, ir.Conv):
        k = math.prod(node.kernel)
        return node.in_channels // node.groups * k, node.out_channels * k
    if isinstance(node, ir.Op) and node.op == "conv_transpose":
        k = math.prod(node.attr("kernel"))
        return node.attr("out") // node.attr("groups") * k, node.in_shape[-1] * k
    raise ValueError(f"{node.kind} has no fans")


def dist(init: Init, kind: str, tensor: str, fan_in: int = 0, fan_out: int = 0) -> Dist:
    """The distribution a scheme gives one tensor of a layer of ``kind`` with PyTorch's fans ``fan_in``, ``fan_out``."""
    s = init.scheme
    if s == "torch_default":
        if kind in NORMS:
            return Dist("constant", 1.0 if tensor == "weight" else 0.0)
        b = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return Dist("uniform", low=-b, high=b)
    if s == "zeros":
        return Dist("constant", 0.0)
    if s == "ones":
        return Dist("constant", 1.0)
    if s == "constant":
        return Dist("constant", init.p("value"))
    if s == "normal":
        return Dist("normal", init.p("mean"), init.p("std"))
    if s == "uniform":
        return Dist("uniform", low=init.p("a"), high=init.p("b"))
    if s == "trunc_normal":
        return Dist("trunc_normal", init.p("mean"), init.p("std"), init.p("a"), init.p("b"))
    scale, mode, distribution = variance_scale(init)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    var = scale / max(fan, 1)  # Keras' max(1, fan); PyTorch refuses a zero fan, which no layer has
    if distribution == "uniform":
        b = math.sqrt(3 * var)
        return Dist("uniform", low=-b, high=b)
    if distribution == "untruncated_normal":
        return Dist("normal", 0.0, math.sqrt(var))
    std = math.sqrt(var) / TRUNCATED_STD
    return Dist("trunc_normal", 0.0, std, -2 * std, 2 * std)


def node_dists(node: ir.Node) -> dict[str, Dist]:
    """Each initialized tensor of an instance node (PyTorch's names) -> its distribution."""
    from . import ops

    kind = ops.leaf_kind(node)
    if kind not in KINDS or not node.init:
        return {}
    fi, fo = fans(node) if kind in CONV_LIKE else (0, 0)
    has_bias = _has_bias(node)
    out = {}
    for tensor, init in node.init:
        if tensor == "bias" and not has_bias:
            continue
        if tensor == "weight" and isinstance(node, ir.BatchNorm) and not node.scale:
            continue
        out[tensor] = dist(init, kind, tensor, fi, fo)
    return out


def _has_bias(node: ir.Node) -> bool:
    if isinstance(node, (ir.Conv, ir.Dense)):
        return node.bias
    if isinstance(node, ir.Op) and node.op == "conv_transpose":
        return bool(node.attr("bias"))
    return True
