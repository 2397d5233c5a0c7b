"""Distributed training of the generated models: PyTorch DistributedDataParallel (gloo, 2 CPU processes on
loopback) and Keras' ``keras.distribution.DataParallel`` (JAX backend, 2 CPU devices).

One training step under each gives the gradients (Keras: the weights after one SGD step) of one process
on the whole batch. Small variants (``--set``) keep each case to seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from archc.backends import get_backend  # noqa: E402
from torch import nn  # noqa: E402

from archc.pipeline import compile_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
BATCH = 4  # per process

CASES = {  # spec, --set overrides, build options; every dropout off (its masks differ across processes)
    "mobilenet_v1": ("specs/mobilenet_v1.yaml", ["alpha=0.25", "size=64", "dropout=0.0", "classes=10"], {}),
    "densenet121_memory_efficient": (
        "specs/densenet121.yaml",
        ["block_config=[2, 2, 2, 2]", "size=48", "growth_rate=8", "stem_channels=16", "classes=10"],
        {"memory_efficient": True},  # checkpointed dense layers under DDP
    ),
    "googlenet_aux": ("specs/googlenet.yaml", ["size=96", "dropout=0.0", "aux_dropout=0.0", "classes=10"], {}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loss_of(module, out, y):
    """Cross entropy, auxiliary heads weighted by the model's LOSS_WEIGHTS (training mode returns them)."""
    outs = out if isinstance(out, tuple) else (out,)
    return sum(w * nn.functional.cross_entropy(o, y) for o, w in zip(outs, module.LOSS_WEIGHTS.values()))


def one_step(module, net, x, y) -> tuple[dict, dict]:
    """Forward + backward + one SGD step; returns (gradients, state after the step)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    opt.zero_grad()
    loss_of(module, net(x), y).backward()
    grads = {n.removeprefix("module."): p.grad.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    state = {k.removeprefix("module."): v.detach().clone() for k, v in net.state_dict().items()}
    return grads, state


def ddp_worker(rank, world, port, work):
    """One process of the DDP group: every case's step without, then mobilenet's with SyncBatchNorm."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for case, sync_bn in [(c, False) for c in CASES] + [("mobilenet_v1", True)]:
            d = Path(work) / case
            try:
                module = load_module(d / "code.py")
                net = module.build_model().double()
                net.load_state_dict(torch.load(d / "init.pt"))
                if sync_bn:
                    net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
                model = nn.parallel.DistributedDataParallel(net)
                x, y = torch.load(d / "batch.pt")
                result = one_step(module, model, x.chunk(world)[rank], y.chunk(world)[rank])
            except Exception as exc:  # noqa: BLE001 - recorded for the test to raise
                if not sync_bn:
                    raise
                result = f"{type(exc).__name__}: {exc}"
            torch.save(result, d / f"rank{rank}{'_sync' if sync_bn else ''}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """Runs every case under DDP in one group of 2 processes (spawning costs more than the steps);
    returns case -> (module, initial net in float64, x, y, [rank results], [rank SyncBN results])."""
    work = tmp_path_factory.mktemp("ddp")
    inputs = {}
    for case, (spec, sets, options) in CASES.items():
        d = work / case
        d.mkdir()
        model = compile_spec(spec, sets)
        (d / "code.py").write_text(get_backend("torch", **options).emit(model), encoding="utf-8")
        module = load_module(d / "code.py")
        torch.manual_seed(0)
        net = module.build_model().double()  # float64: a real difference stands out from rounding
        h, w, c = model.input_shape
        x = torch.randn(WORLD * BATCH, c, h, w, dtype=torch.float64)
        y = torch.randint(0, 10, (WORLD * BATCH,))
        torch.save(net.state_dict(), d / "init.pt")
        torch.save((x, y), d / "batch.pt")
        inputs[case] = (module, net, x, y)
    mp.spawn(ddp_worker, args=(WORLD, free_port(), str(work)), nprocs=WORLD, join=True)
    out = {}
    for case, (module, net, x, y) in inputs.items():
        ranks = [torch.load(work / case / f"rank{r}.pt") for r in range(WORLD)]
        sync = [torch.load(work / case / f"rank{r}_sync.pt") for r in range(WORLD)] if case == "mobilenet_v1" else None
        out[case] = (module, net, x, y, ranks, sync, work / case / "init.pt")
    return out


def rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def worst(d1: dict, d2: dict) -> tuple[float, str]:
    assert d1.keys() == d2.keys()
    return max((rel(d1[k].double(), d2[k].double()), k) for k in d1 if d2[k].is_floating_point())


TOL = 1e-7  # float64 through a deep network; a real difference (BN statistics, a lost head) is > 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_step_equals_single_process(case, ddp):
    """DDP (gloo, 2 CPU processes): each process's BatchNorm normalizes its half of the batch, so the single
    process reference runs the two halves through the same model (train mode) and averages their losses:
    exactly what DDP's gradient all-reduce (a mean over processes) computes. Both ranks end the step
    with identical parameters, equal to the reference's; rank 0's BN running statistics are those of its
    half (DDP broadcasts rank 0's buffers before each forward)."""
    module, net, x, y, ranks, _, init = ddp[case]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    opt.zero_grad()
    halves = list(zip(x.chunk(WORLD), y.chunk(WORLD)))
    (sum(loss_of(module, net(xh), yh) for xh, yh in halves) / WORLD).backward()
    grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    params = {k: v.detach() for k, v in net.named_parameters()}
    (g0, s0), (g1, s1) = ranks
    assert g0.keys() == grads.keys()
    err, name = worst(g0, grads)
    assert err <= TOL, (case, name, err)
    assert worst(g1, g0)[0] == 0.0  # all-reduced: bit-identical on both ranks
    err, name = worst({k: s0[k] for k in params}, params)
    assert err <= TOL, (case, name, err)
    assert worst({k: s1[k] for k in params}, {k: s0[k] for k in params})[0] == 0.0
    net0 = module.build_model().double()
    net0.load_state_dict(torch.load(init))
    net0.train()
    with torch.no_grad():
        net0(halves[0][0])
    stats = {k: v for k, v in net0.state_dict().items() if "running_" in k}
    assert stats and worst({k: s0[k] for k in stats}, stats)[0] <= TOL


@pytest.mark.xfail(
    raises=RuntimeError,
    strict=True,
    reason="torch 2.13's SyncBatchNorm runs on GPU only (DDP: 'SyncBatchNorm layers only work with GPU modules')",
)
def test_ddp_sync_batchnorm_step_equals_single_process_on_whole_batch(ddp):
    """With nn.SyncBatchNorm.convert_sync_batchnorm, BN statistics span both processes: one DDP step gives the
    gradients of one process on the whole batch. Strict xfail: it passes (and so fails here) once torch runs
    SyncBatchNorm on CPU."""
    module, net, x, y, _, sync, _ = ddp["mobilenet_v1"]
    if isinstance(sync[0], str):
        assert "SyncBatchNorm" in sync[0] and "GPU" in sync[0], sync[0]  # torch's refusal, not some other failure
        raise RuntimeError(sync[0])
    grads, state = one_step(module, net, x, y)
    assert worst(sync[0][0], grads)[0] <= TOL
    assert worst({k: sync[0][1][k] for k in state}, state)[0] <= TOL


KERAS_SCRIPT = r"""
import json, os, sys
import numpy as np, keras, jax
keras.config.set_floatx("float64")  # a real difference stands out from rounding (JAX_ENABLE_X64 is set)
code, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import importlib.util
spec = importlib.util.spec_from_file_location("m", code)
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
rng = np.random.default_rng(0)
x = rng.standard_normal((8, h, w, 3))
y = rng.integers(0, 10, 8)
keras.utils.set_random_seed(0)
init = m.build_model((h, w, 3)).get_weights()


def step():
    model = m.build_model((h, w, 3))
    model.set_weights(init)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    loss = float(model.train_on_batch(x, y))
    return model, loss


single, loss1 = step()
devices = jax.devices("cpu")
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
parallel, loss2 = step()
shardings = {len(v.value.sharding.device_set) for v in parallel.weights}
worst = 0.0  # per tensor, max |difference| / max |tensor| (not relative to how far the step moved it: near 0 for some)
for a, b in zip(parallel.get_weights(), single.get_weights()):
    if np.issubdtype(b.dtype, np.floating):
        scale = np.abs(b).max()
        worst = max(worst, float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a).max() > 0))
print(json.dumps({"devices": len(devices), "shardings": sorted(shardings), "loss": [loss1, loss2], "worst": worst,
                  "distribution": type(keras.distribution.distribution()).__name__}))
"""


@pytest.mark.parametrize("case", ["mobilenet_v1"])
def test_keras_data_parallel_step_equals_single_device(case, tmp_path):
    """keras.distribution.DataParallel on Keras' JAX backend with 2 CPU devices: the batch is split across the
    devices, the program is one SPMD computation (BN statistics over the whole batch), and one SGD step leaves
    every weight and statistic where one device leaves it (relative to the tensor's scale)."""
    pytest.importorskip("jax")
    spec, sets, _ = CASES[case]
    model = compile_spec(spec, sets)
    code = tmp_path / f"{case}_keras.py"
    code.write_text(get_backend("keras").emit(model), encoding="utf-8")
    h, w, _ = model.input_shape
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env.update(JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    r = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, str(code), str(h), str(w)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["shardings"] == [2] and out["distribution"] == "DataParallel", out
    # float64 here still differs by ~4e-7 in the loss and up to 4.3e-6 of a tensor's scale after the step (some of
    # Keras-JAX's path runs in float32: eager and jitted single-device losses differ by 1e-6 too; on one machine
    # this measure, taken relative to how far the step moved each tensor, gave 0.107 for a tensor the step barely
    # moved); the wrong algorithm, BN statistics per device (the mean of two half-batch steps), differs by 2.06
    # (conv1/kernel), so 1e-4 is 23x the rounding seen and 20,000x below the error it guards against
    assert abs(out["loss"][0] - out["loss"][1]) <= 1e-5 * abs(out["loss"][0]), out
    assert out["worst"] <= 1e-4, out
