"""Parity between the generated PyTorch and Keras models of any rank (1-D, 2-D, 3-D), for tests.

``parity(text)`` compiles a spec, emits both backends in memory, gives the PyTorch model random weights and
random BN statistics, converts them through the IR into the Keras model, and runs both in float64 on one random
input: it returns (PyTorch output, Keras output, worst relative error = max |difference| / max |output|). Float64
by default, since the tests using it assert that the two backends compute the same algorithm; float32 where
TensorFlow has no float64 kernel (3-D max pooling).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
from archc.backends import get_backend

from archc.pipeline import compile_spec


def load(text: str, name: str):
    """The module of generated source ``text`` (written to a temporary file: Keras inspects its layers' source)."""
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def randomize_torch(model, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 0.5 + 0.75)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g, dtype=b.dtype) * 0.5 + 0.5)
        for t in [*model.parameters(), *model.buffers()]:  # float32 values: what the converter hands Keras
            if t.is_floating_point():
                t.copy_(t.float())


def parity(path, sets=(), seed: int = 0, batch: int = 2, dtype: str = "float64"):
    """(torch output, keras output, relative error) of the spec at ``path`` in ``dtype``, eval mode."""
    import keras
    import torch

    from archc.convert import set_keras_weights, torch_to_keras

    model = compile_spec(str(path), list(sets))
    stem = f"{model.name}_{abs(hash((str(path), tuple(sets)))) % 10**8}"
    tmod = load(get_backend("torch").emit(model), f"rank_parity_t_{stem}")
    kmod = load(get_backend("keras").emit(model), f"rank_parity_k_{stem}")
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        tnet = tmod.build_model().to(getattr(torch, dtype)).eval()
        randomize_torch(tnet, seed)
        knet = kmod.build_model()
        set_keras_weights(knet, torch_to_keras(model, tnet.state_dict()))
        x = np.random.default_rng(seed + 1).normal(size=(batch, *model.input_shape)).astype(dtype)
        with torch.no_grad():
            yt = tnet(torch.from_numpy(np.moveaxis(x, -1, 1).copy()))
        yk = knet(x, training=False)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    if model.outputs:  # several outputs: a dict in both, in the spec's order; the worst error of them
        names = [n for n, _ in model.outputs]  # (Keras' model also returns the aux heads', as a list would)
        assert list(yt) == names and set(names) <= set(yk), (list(yt), list(yk))
        pairs = [_pair(yt[n].numpy(), np.asarray(yk[n])) for n in names]
        return [p[0] for p in pairs], [p[1] for p in pairs], max(p[2] for p in pairs)
    return _pair(yt.numpy(), np.asarray(yk))


def _pair(yt, yk):
    """(torch output, keras output in PyTorch's layout, relative error)."""
    if yk.ndim > 2:
        yk = np.moveaxis(yk, -1, 1)
    assert yt.shape == yk.shape, (yt.shape, yk.shape)
    err = float(np.abs(yt - yk).max() / max(np.abs(yt).max(), 1e-300))
    return yt, yk, err
