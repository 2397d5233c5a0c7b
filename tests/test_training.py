"""The same training in PyTorch and Keras: the generated models, from the same initial weights (converted), fed the
same batches with BN in training mode and dropout off, take the same steps with the optimizers the seed papers use.

Each case builds one spec of a family at 32 px (GoogLeNet at 96, for its auxiliary heads), 10 classes, both
backends, in float64 (torch ``.double()``; Keras with floatx and the dtype policy float64), converts the torch
model's initial weights to Keras (archc.convert, dtype float64) and runs N = 3 steps of the same three batches of 8:
after each step the losses and every tensor of the state (parameters, BN running mean and variance) must agree.
The optimizer pairs are docs/guides/training.md's table: torch.optim's SGD (momentum, Nesterov, weight decay: as
DenseNet and GoogLeNet train) against the Keras helper ``SGDTorch``; torch.optim's RMSprop (alpha 0.9, eps 1.0,
momentum 0.9: as MobileNet trains) against ``RMSpropTorch``; and the other way, Keras' own SGD and RMSprop against
the torch helpers ``SGDKeras`` and ``RMSpropKeras`` (``archc build -O optimizers`` emits the helpers). The BN
running variance follows the spec's ``running_var`` (PyTorch's unbiased convention by default: the generated Keras
model's ``BatchNormalizationUnbiased``).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from archc.convert import keras_model_weights, keras_to_torch, set_keras_weights, torch_to_keras  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402
from tests.conftest import keep_report, run_cli  # noqa: E402

STEPS, BATCH, CLASSES = 3, 8, 10
# float64 on both sides: the two frameworks differ by their summation orders, ~1e-16 of a value per operation, grown
# through a deep network and three steps (measured worst: loss 1.2e-10, tensor 1.7e-9, MobileNetV2 with RMSprop); the
# differences this guards against (the BN variance convention, epsilon inside or outside RMSprop's square root,
# coupled or decoupled weight decay) are 1e-6 to 1e-1 (test_the_frameworks_own_optimizers_differ_...: 4.5e-4, 0.41).
TOL_LOSS = 1e-9  # |loss_torch - loss_keras| / |loss_torch|
# Since the zoo initializes as torchvision does (kaiming normal, fan_out), MobileNetV2 with RMSprop gives 5.9e-8 on
# stage5.first.expand_bn.bias (its ReLU6s saturate more often from that start, and RMSprop divides small gradients
# by small roots): 1e-6 keeps a margin of 17 over it and of 450 under the smallest difference guarded against
TOL_STATE = 1e-6  # per tensor: max |torch - keras| / max |torch| (relative to the tensor's scale, not element-wise)
# ... a scale floored at 1e-6: a tensor whose gradient is zero in exact arithmetic (a BN shift followed by a conv and
# a BN in training mode, which subtracts it again: MobileNetV2's project_bn.bias) holds rounding noise, ~1e-17 in
# both frameworks, different noise; against that floor it is compared to 1e-14 absolute
SCALE_FLOOR = 1e-6
# Keras' SGD casts its momentum, and every optimizer its weight_decay, with ops.cast from a Python float, which on
# TensorFlow goes through float32 (0.9 -> 0.8999999761581421: 2.6e-8 relative, a float64 difference of 4.5e-7 after
# three steps); the cases with Keras' own SGD use values float32 holds exactly (the helpers multiply by the float).
MOMENTUM_F32, DECAY_F32 = 0.875, 2.0**-7

SMALL = ["size=32", f"classes={CLASSES}"]
FAMILIES = {  # family -> (spec, --set overrides: small, every dropout and stochastic depth off)
    "resnet": ("specs/resnet18.yaml", [*SMALL, "width=16"]),
    "densenet": (
        "specs/densenet121.yaml",
        [*SMALL, "block_config=[2, 2, 2, 2]", "growth_rate=8", "stem_channels=16"],
    ),
    "googlenet": ("specs/googlenet.yaml", ["size=96", f"classes={CLASSES}", "dropout=0.0", "aux_dropout=0.0"]),
    "mobilenet_v1": ("specs/mobilenet_v1_025_160.yaml", [*SMALL, "dropout=0.0"]),
    "mobilenet_v2": ("specs/mobilenet_v2.yaml", [*SMALL, "dropout=0.0"]),
    "efficientnet": ("specs/efficientnet_b0.yaml", [*SMALL, "dropout=0.0", "stochastic_depth_prob=0.0"]),
}
# (PyTorch optimizer, Keras optimizer): (name, kwargs) each; a name in torch.optim / keras.optimizers or a helper of the
# generated module (-O optimizers). Each pair is one row of docs/guides/training.md's table: the same update.
SGD_PAPERS = (  # DenseNet and GoogLeNet (the seeds): SGD, Nesterov momentum 0.9, weight decay 1e-4 (L2, PyTorch's)
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)),
    ("SGDTorch", dict(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)),
)
RMSPROP_PAPERS = (  # MobileNet V1 (the seed; V2 and EfficientNet too): RMSprop, decay 0.9, momentum 0.9, epsilon 1.0
    ("RMSprop", dict(lr=0.045, alpha=0.9, eps=1.0, momentum=0.9)),
    ("RMSpropTorch", dict(learning_rate=0.045, rho=0.9, epsilon=1.0, momentum=0.9)),
)
CASES = {  # case -> (family, optimizers)
    "resnet": ("resnet", SGD_PAPERS),
    "densenet": ("densenet", SGD_PAPERS),
    "googlenet": ("googlenet", SGD_PAPERS),
    "mobilenet_v1": ("mobilenet_v1", RMSPROP_PAPERS),
    "mobilenet_v2": ("mobilenet_v2", RMSPROP_PAPERS),
    "efficientnet": ("efficientnet", RMSPROP_PAPERS),
    # by settings alone: Keras' SGD with momentum and Nesterov is PyTorch's at a constant learning rate
    "resnet_keras_sgd": (
        "resnet",
        (
            ("SGD", dict(lr=0.05, momentum=MOMENTUM_F32, nesterov=True)),
            ("SGD", dict(learning_rate=0.05, momentum=MOMENTUM_F32, nesterov=True)),
        ),
    ),
    # the other way: Keras' own optimizers, and the PyTorch helpers that update as they do
    "densenet_keras_weight_decay": (
        "densenet",
        (
            ("SGDKeras", dict(lr=0.05, momentum=MOMENTUM_F32, nesterov=True, weight_decay=DECAY_F32)),
            ("SGD", dict(learning_rate=0.05, momentum=MOMENTUM_F32, nesterov=True, weight_decay=DECAY_F32)),
        ),
    ),
    "mobilenet_v1_keras_rmsprop": (
        "mobilenet_v1",
        (
            ("RMSpropKeras", dict(lr=0.045, alpha=0.9, eps=1.0, momentum=0.9)),
            ("RMSprop", dict(learning_rate=0.045, rho=0.9, epsilon=1.0, momentum=0.9)),
        ),
    ),
}
# pairs that differ: one framework's optimizer under the other's arguments (what the helpers are for)
DIFFERENT = {
    "mobilenet_v1_epsilon": (  # epsilon outside (PyTorch) or inside (Keras) the square root
        "mobilenet_v1",
        (
            ("RMSprop", dict(lr=0.045, alpha=0.9, eps=1.0, momentum=0.9)),
            ("RMSprop", dict(learning_rate=0.045, rho=0.9, epsilon=1.0, momentum=0.9)),
        ),
    ),
    "densenet_weight_decay": (  # weight decay in the gradient (PyTorch) or decoupled (Keras)
        "densenet",
        (
            ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
            ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
        ),
    ),
}
REPORT: dict[str, str] = {}


@pytest.fixture(scope="module")
def float64_keras():
    """Keras layers made inside are float64 (floatx and the dtype policy: the policy, once made, outlives floatx)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("training")


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread: on a busy 2-core machine its float64 kernels spin on a second one (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(spec: str, sets: list[str], out: Path, stem: str):
    """(IR model, torch module, keras module), emitted with ``-O optimizers`` (the optimizer helpers)."""
    mods = []
    for backend in ("torch", "keras"):
        path = out / backend / f"{stem}.py"
        argv = ["build", spec, "--backend", backend, "-O", "optimizers", "-o", path]
        for s in sets:
            argv += ["--set", s]
        r = run_cli(*argv)
        assert r.code == 0, r.err
        mods.append(load(path, f"training_{backend}_{stem}"))
    return compile_spec(spec, sets), mods[0], mods[1]


def batches(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, *model.input_shape)), rng.integers(0, CLASSES, BATCH)) for _ in range(STEPS)]


def torch_loss(tmod, out, y):
    """Cross entropy (mean over the batch), auxiliary heads weighted by LOSS_WEIGHTS, as Keras' compile does."""
    outs = out if isinstance(out, tuple) else (out,)
    loss = 0.0
    for o, w in zip(outs, tmod.LOSS_WEIGHTS.values()):
        loss = loss + w * torch.nn.functional.cross_entropy(o, y)
    return loss


def keras_model(kmod, net, ir, optimizer):
    """The generated Keras model with ``net``'s weights (converted in float64), compiled with ``optimizer``."""
    kmodel = kmod.build_model()
    assert {w.dtype for w in kmodel.weights} == {"float64"}  # the generated model honors floatx / the policy
    set_keras_weights(kmodel, torch_to_keras(ir, net.state_dict(), dtype="float64"))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if len(kmod.LOSS_WEIGHTS) > 1:
        kmodel.compile(optimizer, loss={k: ce for k in kmod.LOSS_WEIGHTS}, loss_weights=kmod.LOSS_WEIGHTS)
    else:
        kmodel.compile(optimizer, loss=ce)
    kmodel.run_eagerly = True  # no tracing of a deep model for 3 steps (the compiled step agrees as closely)
    return kmodel


def keras_step(kmod, kmodel, x, y) -> float:
    target = {k: y for k in kmod.LOSS_WEIGHTS} if len(kmod.LOSS_WEIGHTS) > 1 else y
    out = kmodel.train_on_batch(x, target)
    return float(out[0] if isinstance(out, list) else out)


def state_errors(ir, net, kmodel) -> dict[str, float]:
    """Per state_dict tensor: max |torch - keras| / max |torch| (Keras' weights brought to torch's layout)."""
    theirs = keras_to_torch(ir, keras_model_weights(kmodel), dtype="float64")
    out = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        a, b = v.detach().numpy(), np.asarray(theirs[k])
        out[k] = float(np.abs(a - b).max() / max(np.abs(a).max(), SCALE_FLOOR))
    return out


def train_both(tmod, kmod, ir, torch_opt, keras_opt, data):
    """N steps on both sides: [(torch loss, keras loss, {tensor: relative difference})] after each step."""
    torch.manual_seed(0)
    net = tmod.build_model().double().train()
    kmodel = keras_model(kmod, net, ir, keras_opt)
    opt = torch_opt(net.parameters())
    out = []
    for x, y in data:
        opt.zero_grad()
        loss = torch_loss(tmod, net(torch.from_numpy(np.moveaxis(x, -1, 1).copy())), torch.from_numpy(y))
        loss.backward()
        opt.step()
        lk = keras_step(kmod, kmodel, x, y)
        out.append((loss.item(), lk, state_errors(ir, net, kmodel)))
    return out


def check(history, label: str, started: float) -> None:
    worst_loss = max(abs(lt - lk) / abs(lt) for lt, lk, _ in history)
    worst_state, name = max(max((e, k) for k, e in errs.items()) for _, _, errs in history)
    REPORT[label] = (
        f"{label}: losses {' '.join(f'{lt:.6f}' for lt, _, _ in history)}; worst loss difference {worst_loss:.1e}, "
        f"worst tensor difference {worst_state:.1e} ({name}); {time.perf_counter() - started:.1f} s"
    )
    keep_report("training", list(REPORT.values()))
    assert worst_loss <= TOL_LOSS, REPORT[label]
    assert worst_state <= TOL_STATE, REPORT[label]


@pytest.fixture(scope="module")
def built(workdir):
    """family -> (IR model, torch module, keras module), built once."""
    cache = {}

    def get(family):
        if family not in cache:
            spec, sets = FAMILIES[family]
            cache[family] = build(spec, sets, workdir, family)
        return cache[family]

    return get


def run_case(family, optimizers, built):
    ir, tmod, kmod = built(family)
    (tname, tkw), (kname, kkw) = optimizers
    tcls = getattr(tmod, tname, None) or getattr(torch.optim, tname)
    kcls = getattr(kmod, kname, None) or getattr(keras.optimizers, kname)
    label = f"{family}: {'torch.optim.' if tcls.__module__.startswith('torch') else ''}{tname} / {kname}"
    return label, train_both(tmod, kmod, ir, lambda params: tcls(params, **tkw), kcls(**kkw), batches(ir))


@pytest.mark.parametrize("case", list(CASES))
def test_same_training_in_both_frameworks(case, float64_keras, one_thread, built):
    """The PyTorch optimizer on the generated PyTorch model, its Keras counterpart on the generated Keras model
    (docs/guides/training.md's table), from the same weights, on the same batches: after each of N steps the
    losses, the parameters and the BN running statistics agree."""
    started = time.perf_counter()
    family, optimizers = CASES[case]
    label, history = run_case(family, optimizers, built)
    check(history, label, started)


@pytest.mark.parametrize("case", list(DIFFERENT))
def test_the_frameworks_own_optimizers_differ_under_the_same_arguments(case, float64_keras, one_thread, built):
    """What the helpers are for: torch.optim's RMSprop and Keras' at epsilon 1.0, or their SGD with weight decay,
    take different steps from the first one on (far outside the tolerance the helpers meet)."""
    family, optimizers = DIFFERENT[case]
    label, history = run_case(family, optimizers, built)
    _, _, errs = history[0]
    worst, name = max((e, k) for k, e in errs.items())
    REPORT[f"differ {label}"] = f"differ {label}: worst tensor difference after one step {worst:.1e} ({name})"
    keep_report("training", list(REPORT.values()))
    assert worst > 1e2 * TOL_STATE, REPORT[f"differ {label}"]  # (SGD with weight decay: 4.5e-4, 450 times)


BN_SPEC = """
name: bn_convention
input: {INPUT, channels: 3}
params:
  running_var: unbiased
network:
  - bn: {name: bn, momentum: 0.25, running_var: $running_var}
  - bn: {name: bn_no_scale, scale: false, running_var: $running_var}
  - relu
top:
  - gap
  - dense: {out: 4}
  - bn: {name: flat_bn, scale: false, running_var: $running_var}
"""
SHAPES = {2: (6, 5), 3: (2, 3, 5)}  # spatial sizes of a 2-D and a 3-D input


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("convention", ["unbiased", "biased"])
def test_bn_running_variance_follows_the_spec_in_both_frameworks(convention, rank, float64_keras, tmp_path):
    """One training-mode forward of the same batch: PyTorch's running variance and Keras' moving variance both
    average in the spec's batch variance, unbiased (PyTorch's BatchNorm; Keras through BatchNormalizationUnbiased)
    or biased (Keras' BatchNormalization; PyTorch through BatchNorm2dBiased, BatchNorm3dBiased, ...); the batch
    itself is normalized with the biased variance either way (the same outputs)."""
    spatial = SHAPES[rank]
    keys = ("depth", "height", "width")[3 - rank :]
    spec = tmp_path / "bn_convention.yaml"
    spec.write_text(BN_SPEC.replace("INPUT", ", ".join(f"{k}: {n}" for k, n in zip(keys, spatial))), encoding="utf-8")
    ir, tmod, kmod = build(str(spec), [f"running_var={convention}"], tmp_path, f"bn_{convention}_{rank}d")
    net = tmod.build_model().double().train()
    kmodel = kmod.build_model()
    set_keras_weights(kmodel, torch_to_keras(ir, net.state_dict(), dtype="float64"))
    keras_class = {"unbiased": "BatchNormalizationUnbiased", "biased": "BatchNormalization"}[convention]
    assert {type(kmodel.get_layer(n)).__name__ for n in ("bn", "bn_no_scale", "flat_bn")} == {keras_class}
    biased = "Biased" if convention == "biased" else ""
    torch_classes = (f"BatchNorm{rank}d{biased}", f"BatchNorm{rank}dNoScale{biased}", f"BatchNorm1dNoScale{biased}")
    assert tuple(type(m).__name__ for m in (net.bn, net.bn_no_scale, net.flat_bn)) == torch_classes
    x = np.random.default_rng(1).normal(0.5, 2.0, (4, *spatial, 3))
    out_t = net(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).detach().numpy()
    out_k = np.asarray(kmodel(x, training=True))
    assert np.abs(out_t - out_k).max() <= 1e-12 * np.abs(out_t).max()
    flat = x.reshape(-1, 3)
    ddof = {"unbiased": 1, "biased": 0}[convention]
    expected = 0.75 * 1.0 + 0.25 * flat.var(axis=0, ddof=ddof)  # PyTorch's momentum 0.25 (Keras' 0.75), from 1
    other = 0.75 * 1.0 + 0.25 * flat.var(axis=0, ddof=1 - ddof)
    state = keras_to_torch(ir, keras_model_weights(kmodel), dtype="float64")
    for side, got in [("torch", net.bn.running_var.detach().numpy()), ("keras", np.asarray(state["bn.running_var"]))]:
        assert np.abs(got - expected).max() <= 1e-14, (side, got, expected)
        assert np.abs(got - other).max() > 1e-3, side  # the two conventions are told apart at this batch
    assert np.abs(np.asarray(state["bn.running_mean"]) - 0.25 * flat.mean(axis=0)).max() <= 1e-14
    for key in ("bn_no_scale.running_var", "bn_no_scale.running_mean", "flat_bn.running_var", "flat_bn.running_mean"):
        t = net.state_dict()[key].numpy()  # after another BN (mean 0, variance 1: rounding noise and ~1) and flat
        assert np.abs(np.asarray(state[key]) - t).max() <= 1e-12 * max(np.abs(t).max(), 1.0), key
