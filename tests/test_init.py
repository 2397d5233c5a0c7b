"""Initialization (a spec's ``init:``, :mod:`archc.init`): the same distribution in both frameworks, statistically.

Per layer and tensor, the fresh weights of the generated PyTorch model and of the generated Keras model are checked
against the distribution the IR declares (:func:`archc.init.node_dists`): constants exactly; uniform and truncated
normal bounds exactly (to float32 rounding); the sample mean within K standard errors (K * sd / sqrt(n)); the
sample standard deviation within K / sqrt(2 n) relative (the normal's sampling error of a standard deviation; a
uniform's or a truncated normal's is smaller), for tensors of at least MIN_STD_N values. For every zoo spec with a
reference builder (torchvision's, keras.applications'), each layer's fresh weights are also compared with the
reference's fresh weights of the same layer: the ratio of their standard deviations must be within the sampling
error of both (exp(+-K sqrt(1 / 2 n1 + 1 / 2 n2))), constants equal. The worst ratio found is written to
``<tmp>/archc-init.txt``. Seeds are fixed, so a run is reproducible; K = 5 makes a false alarm rarer than one in a
million per check.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from archc import init as initmod  # noqa: E402
from archc import ir  # noqa: E402
from archc.convert import load_generated  # noqa: E402
from archc.errors import ArchcError  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402
from tests.conftest import keep_report  # noqa: E402
from tests.sizes import SPECS, check_sets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = 5.0
MIN_STD_N = 20
SAMPLE = 1 << 18  # largest sample a tensor's statistics are computed on
LARGE_TOL = math.sqrt(1 / 2_000)  # the sampling error of a std ratio of two 2,000-value tensors: "large" ones
WORST: dict = {}  # (spec, backend) -> (|log ratio|, ratio, layer): the worst std ratio against the reference

# spec -> (torchvision builder, its kwargs, --set overrides for the spec), from tests/test_torchvision.py's cases
TORCHVISION = {
    "resnet18": ("resnet18", {}, []),
    "resnet34": ("resnet34", {}, []),
    "resnet50": ("resnet50", {}, []),
    "resnet101": ("resnet101", {}, []),
    "resnet152": ("resnet152", {}, []),
    "resnext50_32x4d": ("resnext50_32x4d", {}, []),
    "wide_resnet50_2": ("wide_resnet50_2", {}, []),
    **{f"densenet{d}": (f"densenet{d}", {}, []) for d in (121, 161, 169, 201)},
    "googlenet": ("googlenet", {"aux_logits": True, "transform_input": False, "init_weights": True}, ["kernel5=3"]),
    "googlenet_torchvision": ("googlenet", {"aux_logits": True, "transform_input": False, "init_weights": True}, []),
    "mobilenet_v2": ("mobilenet_v2", {}, []),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}, []),
    "mobilenet_v3_small": ("mobilenet_v3_small", {}, []),
    **{f"efficientnet_b{i}": (f"efficientnet_b{i}", {}, []) for i in range(8)},
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", {}, []),
    "regnet_y_400mf": ("regnet_y_400mf", {}, []),
    "regnet_x_400mf": ("regnet_x_400mf", {}, []),
    "convnext_tiny": ("convnext_tiny", {}, []),
    "inception_v3": (
        "inception_v3",
        {"aux_logits": True, "transform_input": False, "init_weights": True},
        ["aux=true"],
    ),
    "squeezenet1_1": ("squeezenet1_1", {}, []),
    "vgg11": ("vgg11", {}, []),
    "vgg16": ("vgg16", {}, []),
    "vgg19": ("vgg19", {}, []),
    "vgg16_bn": ("vgg16_bn", {}, []),
    "alexnet": ("alexnet", {}, []),
    "r3d_18": ("video.r3d_18", {}, []),
    "mc3_18": ("video.mc3_18", {}, []),
    "r2plus1d_18": ("video.r2plus1d_18", {}, []),
    **{
        s: (f"segmentation.{s}", {"weights_backbone": None, "aux_loss": False}, ["size=64"])
        for s in ("fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large")
    },
    "lraspp_mobilenet_v3_large": ("segmentation.lraspp_mobilenet_v3_large", {"weights_backbone": None}, ["size=64"]),
    # (norm_layer=BatchNorm2d: see torchvision_reference)
    "resnet50_fpn": (
        "detection.backbone_utils.resnet_fpn_backbone",
        {"backbone_name": "resnet50", "trainable_layers": 5},
        ["size=64"],
    ),
}
# keras.applications-family specs: the reference is keras.applications' builder (the mapping's), at these sizes
KERAS_APPLICATIONS = {
    "resnet50_keras": 32,
    "inception_v3_keras": 75,
    "inception_resnet_v2": 75,
    "mobilenet_v1": 32,
    "mobilenet_v1_050": 32,
    "mobilenet_v1_025_160": 32,
    "mobilenet_v2_keras": 32,
    "mobilenet_v3_large_keras": 32,
    "mobilenet_v3_small_keras": 32,
    "efficientnet_b0_keras": 32,
}
# The Keras model of these heavy specs is checked at a smaller variant of the same spec (fewer blocks, VGG's and
# AlexNet's classifier after a 1x1 pool), against the declared schemes: its layers are made by the same emitted
# code (block functions, initializer expressions) at fewer repeats, and building hundreds of Keras layers is most of
# this file's time. Their PyTorch model is checked at full size, against the declared schemes and torchvision's.
KERAS_SMALLER = {
    **{s: ["layers=[1, 1, 1, 1]"] for s in ("resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2")},
    **{f"densenet{d}": ["block_config=[2, 2, 2, 2]"] for d in (121, 161, 169, 201)},
    **{f"efficientnet_b{i}": ["depth_mult=1.0", "layers=[1, 1, 1, 1, 1, 1, 1]"] for i in range(1, 8)},
    **{s: ["top.0.adaptive_avgpool.size=1"] for s in ("vgg11", "vgg16", "vgg19", "vgg16_bn", "alexnet")},
}
# paper specs without a builder to compare with: their declared schemes only (checked in both backends)
NO_REFERENCE = {"conv_autoencoder", "dcgan_generator", "m5", "unet"}  # (unet's hand-written module: PyTorch's defaults)


# ---------------------------------------------------------------------------------------------- the checks


def sample(values) -> np.ndarray:
    """The statistics' sample: every element, or an evenly strided SAMPLE of a larger tensor (its elements are
    independent draws, so a fixed subset is a sample of the distribution; its size sets the tolerances)."""
    v = np.asarray(values).ravel()
    step = -(-v.size // SAMPLE)
    return np.asarray(v[::step], np.float64)


def problems(values, d: initmod.Dist) -> list[str]:
    """How ``values`` (one tensor's fresh weights) disagree with distribution ``d``; empty: they agree."""
    full = np.asarray(values).ravel()
    if d.kind == "constant":
        ok = np.all(full == np.float32(d.mean))
        return [] if ok else [f"not all {d.mean}: {full.min():.4g} .. {full.max():.4g}"]
    out = []
    if d.kind in ("uniform", "trunc_normal"):  # the bounds on every element
        slack = 1e-6 * max(abs(d.low), abs(d.high))  # float32 rounding of the bounds
        lo, hi = float(full.min()), float(full.max())
        if lo < d.low - slack or hi > d.high + slack:
            out.append(f"outside [{d.low:.6g}, {d.high:.6g}]: {lo:.6g} .. {hi:.6g}")
    v = sample(full)
    n = v.size
    sd, mu = d.sd(), d.expected_mean()
    if abs(v.mean() - mu) > K * sd / math.sqrt(n):
        out.append(f"mean {v.mean():.4g}, expected {mu:.4g} +- {K * sd / math.sqrt(n):.2g} (n={n})")
    if n >= MIN_STD_N and abs(v.std() / sd - 1) > K / math.sqrt(2 * n):
        out.append(f"std {v.std():.5g}, expected {sd:.5g} (ratio {v.std() / sd:.4f}, n={n})")
    return out


def torch_tensors(model, node: ir.Node) -> dict[str, np.ndarray]:
    """A layer's parameters (a BN without a learned scale keeps its weight of ones as a buffer: not one)."""
    params = dict(model.get_submodule(node.path).named_parameters(recurse=False))
    return {t: params[t].detach().numpy() for t in initmod.TENSORS if t in params}


KERAS_NAMES = {"kernel": "weight", "depthwise_kernel": "weight", "gamma": "weight", "bias": "bias", "beta": "bias"}


def keras_tensors(model, node: ir.Node) -> dict[str, np.ndarray]:
    layer = model.get_layer(node.path.replace(".", "_"))
    out = {}
    for w in layer.trainable_weights:
        name = w.path.rsplit("/", 1)[-1]
        if name in KERAS_NAMES:
            out[KERAS_NAMES[name]] = np.asarray(w.numpy())
    return out


def init_nodes(model: ir.Model) -> list[ir.Node]:
    return [n for r in [model.body, *(h.body for h in model.heads)] for n in ir.walk(r) if initmod.node_dists(n)]


def fresh(model: ir.Model, seed: int = 0, backends=("torch", "keras")):
    """The generated PyTorch and Keras models of ``model``, freshly built (initialized) at a fixed seed."""
    torch.manual_seed(seed)
    keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = [load_generated(model, b).build_model() for b in backends]
    return built if len(built) > 1 else built[0]


def check_declared(model: ir.Model, tmodel, kmodel) -> list[str]:
    """Every layer's tensors in both backends (None: not this one) against the declared distribution: the
    problems found."""
    bad = []
    for node in init_nodes(model):
        dists = initmod.node_dists(node)
        found = [("torch", torch_tensors, tmodel), ("keras", keras_tensors, kmodel)]
        for backend, got in ((b, f(m, node)) for b, f, m in found if m is not None):
            assert set(got) == set(dists), (backend, node.path, sorted(got), sorted(dists))
            for tensor, d in dists.items():
                bad += [f"{backend} {node.path}.{tensor} ({d.kind}): {p}" for p in problems(got[tensor], d)]
    return bad


# ------------------------------------------------------------------------------------- every scheme, every kind

ALL_SCHEMES = """
name: schemes
input: {height: 16, width: 16, channels: 24}
init:
  conv: {weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, bias: {uniform: {a: -0.2, b: 0.3}}}
  dwconv: {weight: {kaiming_uniform: {mode: fan_in, nonlinearity: leaky_relu, a: 0.2}}, bias: {constant: {value: 0.5}}}
  conv_transpose: {weight: {xavier_normal: {gain: 1.5}}, bias: {normal: {mean: 0.1, std: 0.05}}}
  dense: {weight: {trunc_normal: {mean: 0.0, std: 0.05, a: -0.1, b: 0.1}}, bias: ones}
  bn: {weight: {normal: {mean: 1.0, std: 0.02}}, bias: {uniform: {a: -0.1, b: 0.1}}}
  layernorm: {weight: {constant: {value: 2.0}}, bias: zeros}
  groupnorm: {weight: {uniform: {a: 0.5, b: 1.5}}, bias: {normal: {std: 0.1}}}
blocks:
  kconv:  # in a block the channels and the kernel are the function's: the Keras bias bound is computed when it runs
    params: {k: 3}
    body:
      - conv: {out: 40, kernel: $k, padding: 1, init: {weight: torch_default, bias: torch_default}}
      - dense: {out: 24, init: {weight: torch_default, bias: torch_default}}
network:
  - conv: {out: 96, kernel: 3, padding: 1}
  - bn
  - dwconv: {kernel: 5, padding: 2, multiplier: 2}
  - dwconv: {name: dw_glorot, kernel: 3, padding: 1, multiplier: 2, init: {weight: glorot_uniform, bias: torch_default}}
  - dwconv: {name: dw_torch, kernel: 3, padding: 1, init: {weight: torch_default, bias: torch_default}}
  - groupnorm: {groups: 8}
  - conv: {name: grouped, out: 192, kernel: 3, padding: 1, groups: 4,
           init: {weight: torch_default, bias: torch_default}}
  - conv: {name: vs_trunc, out: 64, kernel: 3, padding: 1,
           init: {weight: {variance_scaling: {scale: 2.0, mode: fan_out}}, bias: zeros}}
  - conv: {name: vs_avg, out: 64, kernel: 1, init: {weight: {variance_scaling: {scale: 0.5, mode: fan_avg,
           distribution: uniform}}}}
  - conv: {name: vs_normal, out: 64, kernel: 3, padding: 1,
           init: {weight: {variance_scaling: {mode: fan_in, distribution: untruncated_normal}}}}
  - conv: {name: glorot_n, out: 64, kernel: 3, padding: 1, init: {weight: {glorot_normal: {gain: 0.5}}}}
  - conv: {name: he_u, out: 64, kernel: 3, padding: 1, init: {weight: {kaiming_uniform: {nonlinearity: relu}}}}
  - conv: {name: trunc2, out: 64, kernel: 3, padding: 1, init: {weight: {trunc_normal: {std: 0.05, a: -0.1, b: 0.1}}}}
  - conv: {name: trunc_far, out: 64, kernel: 3, padding: 1, init: {weight: {trunc_normal: {std: 0.02}}}}
  # bounds Keras' TruncatedNormal (2 stds) cannot draw: 3 and 2 stds, asymmetric; 4 stds, about a mean; the
  # default bounds (-2, 2) at a std so wide that they are 2e-6 stds: nearly uniform (the fuzzer's case 3129)
  - conv: {name: trunc_asym, out: 64, kernel: 3, padding: 1, init: {weight: {trunc_normal: {std: 0.05, a: -0.15,
           b: 0.1}}}}
  - conv: {name: trunc_4, out: 64, kernel: 3, padding: 1, init: {weight: {trunc_normal: {mean: 0.5, std: 0.1,
           a: 0.1, b: 0.9}}}}
  - conv: {name: trunc_wide, out: 64, kernel: 3, padding: 1, init: {weight: {trunc_normal: {std: 1000000.0}}}}
  - kconv: {k: 3}
  - conv_transpose: {out: 32, kernel: 4, stride: 2, padding: 1}
  - conv_transpose: {name: convt_default, out: 32, kernel: 3, padding: 1, init: {weight: torch_default,
                     bias: torch_default}}
  - layernorm
  - dense: {name: pointwise, out: 48}
  - gap
  - dense: {out: 200, init: {weight: {xavier_uniform: {gain: 2.0}}}}
  - dense: {name: fc, out: 300, init: {weight: torch_default, bias: torch_default}}
"""


def test_every_scheme_in_both_backends(write_yaml):
    model = compile_spec(str(write_yaml(ALL_SCHEMES)))
    schemes = {init.scheme for n in init_nodes(model) for _, init in n.init}
    assert schemes == set(initmod.SCHEMES)
    tmodel, kmodel = fresh(model)
    assert check_declared(model, tmodel, kmodel) == []


def test_one_dimensional_and_three_dimensional_models(write_yaml):
    """1-D and 3-D layers: Keras' DepthwiseConv1D (PyTorch's fans through input_axes), a Conv3D per channel."""
    for rank, inp in ((1, "{length: 64, channels: 8}"), (3, "{depth: 4, height: 8, width: 8, channels: 8}")):
        text = f"""
name: ranked{rank}
input: {inp}
init:
  dwconv: {{weight: {{kaiming_normal: {{mode: fan_out}}}}}}
network:
  - conv: {{out: 32, kernel: 3, padding: 1}}
  - dwconv: {{kernel: 3, padding: 1, multiplier: 2}}
  - bn
  - gap
  - dense: {{out: 10}}
"""
        model = compile_spec(str(write_yaml(text, f"r{rank}.yaml")))
        tmodel, kmodel = fresh(model)
        assert check_declared(model, tmodel, kmodel) == [], rank


def test_a_bn_without_scale_keeps_its_ones(write_yaml):
    """The init loop draws the scale of the BNs that have one; a BN without (its weight a buffer of ones) keeps it."""
    text = """
name: noscale
input: {height: 8, width: 8, channels: 16}
init:
  bn: {weight: {normal: {mean: 1.0, std: 0.02}}}
network:
  - bn: {name: plain, scale: false}
  - conv: {out: 512, kernel: 1, bias: false}
  - bn: {name: scaled}
"""
    model = compile_spec(str(write_yaml(text)))
    tmodel, kmodel = fresh(model)
    assert check_declared(model, tmodel, kmodel) == []
    assert torch.equal(tmodel.plain.weight, torch.ones(16))
    assert tmodel.scaled.weight.std() > 0


def test_the_check_can_fail():
    """The statistical check rejects a distribution off by 10 % in std, a shifted mean, a value out of bounds."""
    rng = np.random.default_rng(0)
    d = initmod.Dist("normal", 0.0, 0.1)
    assert problems(rng.normal(0, 0.1, 20_000), d) == []
    assert problems(rng.normal(0, 0.11, 20_000), d)
    assert problems(rng.normal(0.005, 0.1, 20_000), d)
    u = initmod.Dist("uniform", low=-0.1, high=0.1)
    assert problems(rng.uniform(-0.1, 0.1, 20_000), u) == []
    assert problems(rng.uniform(-0.1, 0.1001, 20_000), u)
    assert problems(rng.normal(0, u.sd(), 20_000), u)  # same std, not within the bounds
    t = initmod.Dist("trunc_normal", 0.0, 1.0, -2.0, 2.0)
    x = rng.normal(size=60_000)
    assert problems(x[np.abs(x) <= 2], t) == []
    assert problems(x[np.abs(x) <= 2.5], t)


def test_kaiming_fans_are_pytorch_s(write_yaml):
    """archc's fans and std formula against torch.nn.init's own on the same weights (conv, dwconv, transposed)."""
    model = compile_spec(str(write_yaml(ALL_SCHEMES)))
    tmodel, _ = fresh(model)
    for node in init_nodes(model):
        if not isinstance(node, (ir.Conv, ir.Dense)) and getattr(node, "op", None) != "conv_transpose":
            continue
        w = tmodel.get_submodule(node.path).weight
        assert initmod.fans(node) == torch.nn.init._calculate_fan_in_and_fan_out(w), node.path


def test_init_errors(write_yaml):
    base = "name: e\ninput: {height: 8, width: 8, channels: 3}\n"
    net = "network:\n  - conv: {out: 4, kernel: 3}\n  - bn\n"
    cases = [
        ("init:\n  conv: {weight: he}\n", "'he'"),
        ("init:\n  bn: {weight: kaiming_normal}\n", "needs fans"),
        ("init:\n  conv: {bias: xavier_uniform}\n", "needs fans"),
        ("init:\n  conv: {weight: {normal: {sd: 1}}}\n", "has no param 'sd'"),
        ("init:\n  conv: {weight: {kaiming_normal: {mode: fan_avg}}}\n", "mode must be one of fan_in, fan_out"),
        ("init:\n  conv: {weight: {uniform: {a: 1, b: 0}}}\n", "a < b"),
        ("init:\n  conv: {weight: {constant: {}}}\n", "needs param 'value'"),
        ("defaults:\n  conv: {init: {weight: zeros}}\n", "no attribute 'init'"),
    ]
    for extra, message in cases:
        with pytest.raises(ArchcError, match=message):
            compile_spec(str(write_yaml(base + extra + net)))


def test_item_init_overrides_the_spec_s(write_yaml):
    text = """
name: o
input: {height: 8, width: 8, channels: 3}
init:
  conv: {weight: zeros, bias: ones}
network:
  - conv: {out: 4, kernel: 3}
  - conv: {name: own, out: 4, kernel: 3, init: {weight: {normal: {std: 0.5}}}}
"""
    model = compile_spec(str(write_yaml(text)))
    first, own = model.body.children
    assert dict(first.init) == {"weight": initmod.Init("zeros"), "bias": initmod.Init("ones")}
    assert dict(own.init)["weight"].scheme == "normal" and dict(own.init)["bias"] == initmod.Init("ones")


# ---------------------------------------------------------------------------------------------- the zoo


def zoo_sets(spec: str) -> list[str]:
    stem = Path(spec).stem
    if stem in TORCHVISION:
        return [*check_sets(spec), *TORCHVISION[stem][2]]
    if stem in KERAS_APPLICATIONS:
        return [f"size={KERAS_APPLICATIONS[stem]}"]
    return check_sets(spec)


def std_ratio_problems(key: str, ours: np.ndarray, ref: np.ndarray, record) -> list[str]:
    """Our tensor's std against the reference's (the same layer, freshly built): equal within sampling error."""
    if np.size(ours) != np.size(ref):
        return [f"{key}: {np.size(ours)} values, the reference's {np.size(ref)}"]
    full_a, full_b = np.asarray(ours).ravel(), np.asarray(ref).ravel()
    if full_a.min() == full_a.max() or full_b.min() == full_b.max():
        same = np.array_equal(full_a, full_b)
        return [] if same else [f"{key}: ours {full_a.min()} .. {full_a.max()}, the reference's {full_b.min()} .."]
    a, b = sample(full_a), sample(full_b)
    ratio = a.std() / b.std()
    tol = K * math.sqrt(1 / (2 * a.size) + 1 / (2 * b.size))
    record(key, ratio, tol)
    return [] if abs(math.log(ratio)) <= tol else [f"{key}: std ratio {ratio:.4f} (allowed exp(+-{tol:.3g}))"]


def _recorder(spec: str, backend: str):
    """Keeps, per spec and backend, the worst std ratio in units of its tolerance, and the worst ratio of a tensor of
    at least LARGE values (a small tensor's ratio is far from 1 by chance: a 16-value bias's std has 18 % error)."""

    def record(key, ratio, tol):
        z = abs(math.log(ratio)) / tol * K  # in standard errors
        for kind, value, keep in (("z", z, True), ("large", abs(math.log(ratio)), tol <= K * LARGE_TOL)):
            worst = WORST.get((spec, backend, kind))
            if keep and (worst is None or value > worst[0]):
                WORST[(spec, backend, kind)] = (value, ratio, key, z)

    return record


def torchvision_reference(tv, builder: str, kwargs: dict, seed: int = 1):
    torch.manual_seed(seed)
    module = tv.models
    for part in builder.split(".")[:-1]:
        module = getattr(module, part)
    if "backbone_name" in kwargs:  # resnet_fpn_backbone: BatchNorm2d, not its default FrozenBatchNorm2d
        kwargs = {**kwargs, "norm_layer": torch.nn.BatchNorm2d}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(module, builder.split(".")[-1])(weights=None, **kwargs)


@pytest.mark.parametrize("spec", [s for s in SPECS if Path(s).stem in TORCHVISION])
def test_zoo_torchvision(spec, torchvision):
    """Both backends' fresh weights match the declared scheme, and torchvision's builder's fresh weights."""
    from archc.mapping import mapping_for

    stem = Path(spec).stem
    builder, kwargs, _ = TORCHVISION[stem]
    model = compile_spec(spec, zoo_sets(spec))
    if stem in KERAS_SMALLER:
        tmodel, kmodel = fresh(model, backends=("torch",)), None
        smaller = compile_spec(spec, [*zoo_sets(spec), *KERAS_SMALLER[stem]])
        bad = check_declared(model, tmodel, None) + check_declared(smaller, None, fresh(smaller, backends=("keras",)))
    else:
        tmodel, kmodel = fresh(model)
        bad = check_declared(model, tmodel, kmodel)
    mapping = mapping_for(model)
    theirs = dict(torchvision_reference(torchvision, builder, kwargs).named_parameters())
    renamed = mapping.checkpoint_names(theirs)  # torchvision's key -> the mapping's (archc's where it renames)
    ref = {renamed[k]: v.detach().numpy() for k, v in theirs.items()}
    ours = {k: v.detach().numpy() for k, v in tmodel.named_parameters()}
    names = mapping.names(ours)
    assert set(names.values()) == set(ref), sorted(set(ref) ^ set(names.values()))[:10]
    for key, value in ours.items():  # every parameter: init: tensors, and layer scales (their `init:` attribute)
        bad += [f"torch {p}" for p in std_ratio_problems(key, value, ref[names[key]], _recorder(stem, "torch"))]
    for node in init_nodes(model) if kmodel is not None else ():
        got = keras_tensors(kmodel, node)
        for tensor in initmod.node_dists(node):
            key = f"{node.path}.{tensor}"
            bad += [
                f"keras {p}" for p in std_ratio_problems(key, got[tensor], ref[names[key]], _recorder(stem, "keras"))
            ]
    assert bad == [], "\n".join(bad[:20])


@pytest.mark.parametrize("spec", [s for s in SPECS if Path(s).stem in KERAS_APPLICATIONS])
def test_zoo_keras_applications(spec):
    """Both backends' fresh weights match the declared scheme, and keras.applications' builder's fresh weights."""
    from archc.keras_applications import _resolve, builder_call, leaf_layers
    from archc.mapping import mapping_for

    stem = Path(spec).stem
    model = compile_spec(spec, zoo_sets(spec))
    tmodel, kmodel = fresh(model)
    bad = check_declared(model, tmodel, kmodel)
    mapping = mapping_for(model, "keras.applications")
    f, kwargs, _ = builder_call(mapping, model, include_top=True)
    keras.utils.set_random_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f(**kwargs)
    ref_layers = {layer.name: layer for layer in leaf_layers(ref)}
    nodes = init_nodes(model)

    class _Named:
        def __init__(self, name):
            self.name = name

    names = _resolve(mapping, [_Named(n.path.replace(".", "_")) for n in nodes], list(ref_layers))
    for node in nodes:
        layer = ref_layers[names[node.path.replace(".", "_")]]
        theirs = {
            KERAS_NAMES[w.path.rsplit("/", 1)[-1]]: np.asarray(w.numpy())
            for w in layer.trainable_weights
            if w.path.rsplit("/", 1)[-1] in KERAS_NAMES
        }
        for backend, got in (("torch", torch_tensors(tmodel, node)), ("keras", keras_tensors(kmodel, node))):
            for tensor in initmod.node_dists(node):
                key = f"{node.path}.{tensor}"
                ours = got[tensor].reshape(-1)
                bad += [f"{backend} {p}" for p in std_ratio_problems(key, ours, theirs[tensor].reshape(-1),
                                                                     _recorder(stem, backend))]  # fmt: skip
    assert bad == [], "\n".join(bad[:20])


@pytest.mark.parametrize("spec", [s for s in SPECS if Path(s).stem in NO_REFERENCE])
def test_zoo_declared_only(spec):
    model = compile_spec(spec, zoo_sets(spec))
    tmodel, kmodel = fresh(model)
    assert check_declared(model, tmodel, kmodel) == []


def test_every_zoo_spec_is_checked():
    stems = {Path(s).stem for s in SPECS}
    assert stems == set(TORCHVISION) | set(KERAS_APPLICATIONS) | NO_REFERENCE


def teardown_module(module):
    """The worst std ratios against the references, in <tmp>/archc-init.txt."""
    if not WORST:
        return
    lines = []
    for (spec, backend, kind), (_, ratio, key, z) in sorted(WORST.items()):
        what = "worst in standard errors" if kind == "z" else "worst of tensors >= 2,000 values"
        lines.append(f"{spec} {backend}: {what}: std ratio {ratio:.4f} ({z:.2f} standard errors) at {key}")
    for kind, what in (("z", "in standard errors"), ("large", "of tensors >= 2,000 values")):
        found = [(v, k) for k, v in WORST.items() if k[2] == kind]
        if found:
            (_, ratio, key, z), (spec, backend, _) = max(found)
            lines.append(
                f"worst overall {what}: std ratio {ratio:.4f} ({z:.2f} standard errors), {spec} {backend} {key}"
            )
    keep_report("init", lines)
