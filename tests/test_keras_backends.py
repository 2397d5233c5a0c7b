"""The generated Keras code is backend-neutral: on Keras' JAX and PyTorch backends it computes the TensorFlow
backend's numbers, for every spec in specs/.

Each backend runs in its own process (``KERAS_BACKEND`` is read when keras is imported). The TensorFlow process
builds every model with random weights and random BN statistics, saves them (``.weights.h5``, Keras' own
backend-neutral format), an input and its outputs; the JAX and torch processes load those weights and compare
every output (auxiliary heads too). Inputs are small and odd-sized (TF-'same' padding is asymmetric there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

from archc.backends import get_backend  # noqa: E402

from archc.pipeline import compile_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALL_SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
# CI runs one spec per family (every layer kind and code path of the emitter: dense blocks and transitions,
# Inception modules with auxiliary heads, depthwise-separable convs with a width multiplier); the JAX backend
# builds a functional model slowly (~25 s for a DenseNet), so all nine take minutes more.
# ARCHC_KERAS_BACKENDS=all runs every spec.
FAMILY = ["densenet121", "googlenet", "mobilenet_v1_050"]
SPECS = ALL_SPECS if os.environ.get("ARCHC_KERAS_BACKENDS") == "all" else [s for s in FAMILY if s in ALL_SPECS]
TOLERANCE = 1e-4  # worst relative error (max |difference| / max |reference|) over every output


def input_size(stem: str) -> list[str]:
    """Small odd sizes; GoogLeNet's auxiliary heads need their 5x5 pool to fit (input >= 81)."""
    h, w = (97, 101) if stem.startswith("googlenet") else (65, 71)
    return [f"input.height={h}", f"input.width={w}"]


SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
import importlib.util

work, backend = sys.argv[1], os.environ["KERAS_BACKEND"]
assert keras.backend.backend() == backend, keras.backend.backend()
result = {}
for stem in sys.argv[2:]:
    d = os.path.join(work, stem)
    spec = importlib.util.spec_from_file_location(stem, os.path.join(d, "model.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    shape = tuple(json.load(open(os.path.join(d, "shape.json"))))
    keras.utils.set_random_seed(0)
    model = m.build_model(shape)
    if backend == "tensorflow":  # the reference: random weights and BN statistics, an input, its outputs
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                                   rng.normal(0, 0.2, beta.shape).astype("float32"),
                                   rng.normal(0, 0.2, mean.shape).astype("float32"),
                                   rng.uniform(0.5, 2.0, var.shape).astype("float32")])
        model.save_weights(os.path.join(d, "w.weights.h5"))
        x = rng.standard_normal((2, *shape)).astype("float32")
        np.save(os.path.join(d, "x.npy"), x)
    else:
        model.load_weights(os.path.join(d, "w.weights.h5"))
        x = np.load(os.path.join(d, "x.npy"))
    outs = model.predict(x, batch_size=len(x), verbose=0)  # one compiled program (JAX eager: ~4x slower)
    outs = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
    if backend == "tensorflow":
        np.savez(os.path.join(d, "ref.npz"), *outs)
        result[stem] = 0.0
    else:
        ref = np.load(os.path.join(d, "ref.npz"))
        refs = [ref[f"arr_{i}"] for i in range(len(ref.files))]
        assert [o.shape for o in outs] == [r.shape for r in refs], ([o.shape for o in outs], [r.shape for r in refs])
        result[stem] = max(float(np.abs(o - r).max() / np.abs(r).max()) for o, r in zip(outs, refs))
    keras.utils.clear_session()
print("RESULT " + json.dumps(result))
"""


def run_backend(backend: str, work: Path) -> dict[str, float]:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(work), *SPECS], env=env, capture_output=True, text=True, timeout=1200
    )
    assert r.returncode == 0, f"{backend} backend:\n{r.stderr[-4000:]}"
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Emit every spec at its small input size and run it on the TensorFlow backend; returns the work folder."""
    pytest.importorskip("tensorflow")
    work = tmp_path_factory.mktemp("keras_backends")
    for stem in SPECS:
        model = compile_spec(str(ROOT / "specs" / f"{stem}.yaml"), input_size(stem))
        d = work / stem
        d.mkdir()
        (d / "model.py").write_text(get_backend("keras").emit(model), encoding="utf-8")
        (d / "shape.json").write_text(json.dumps(list(model.input_shape)))
    run_backend("tensorflow", work)
    return work


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_backend_gives_tensorflow_numbers(backend, reference):
    pytest.importorskip(backend)
    errors = run_backend(backend, reference)
    table = "\n".join(f"{stem:24s} {backend:6s} {err:.1e}" for stem, err in sorted(errors.items()))
    print(f"\nspec                     backend worst relative error vs tensorflow\n{table}")
    assert sorted(errors) == SPECS
    bad = {stem: err for stem, err in errors.items() if not err <= TOLERANCE}
    assert not bad, table
