"""keras.applications checkpoints at each spec's own size (224; InceptionV3 299), through the command line as a
user runs it: keras.applications' model with random weights and BN statistics, saved as .weights.h5 and as the
legacy .h5; `archc convert-weights --from keras.applications` to the generated Keras model (.weights.h5) and
the generated torch model (.pt); both against keras.applications' logits. Not part of the suite (about 8 minutes
on 2 cores); tests/test_keras_applications.py checks the same at small sizes. Run from the repository root:

    .venv/bin/python -m tests.full_size_keras_applications [SPEC ...]
"""

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import torch

from tests.test_keras_applications import preprocessed, randomize, save_legacy_h5

ROOT = Path(__file__).resolve().parents[1]
ARCHC = str(Path(sys.executable).with_name("archc"))
TMP = "/tmp"
A = keras.applications
CASES = [
    ("densenet121", lambda: A.DenseNet121(weights=None, classifier_activation=None)),
    ("densenet169", lambda: A.DenseNet169(weights=None, classifier_activation=None)),
    ("densenet201", lambda: A.DenseNet201(weights=None, classifier_activation=None)),
    ("mobilenet_v1", lambda: A.MobileNet(weights=None, classifier_activation=None)),
    ("resnet50_keras", lambda: A.ResNet50(weights=None, classifier_activation=None)),
    ("vgg16", lambda: A.VGG16(weights=None, classifier_activation=None)),
    ("vgg19", lambda: A.VGG19(weights=None, classifier_activation=None)),
    ("mobilenet_v2_keras", lambda: A.MobileNetV2(weights=None, classifier_activation=None)),
    (
        "mobilenet_v3_large_keras",
        lambda: A.MobileNetV3Large(weights=None, classifier_activation=None, include_preprocessing=False),
    ),
    (
        "mobilenet_v3_small_keras",
        lambda: A.MobileNetV3Small(weights=None, classifier_activation=None, include_preprocessing=False),
    ),
    ("efficientnet_b0_keras", lambda: A.EfficientNetB0(weights=None, classifier_activation=None)),
    ("convnext_tiny", lambda: A.ConvNeXtTiny(weights=None, classifier_activation=None, include_preprocessing=False)),
    ("inception_v3_keras", lambda: A.InceptionV3(weights=None, classifier_activation=None)),
]
only = sys.argv[1:]


def load(path, name):
    s = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


for stem, mk in CASES:
    if only and stem not in only:
        continue
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mk()
    randomize(ref, 7)
    size = ref.input_shape[1] or 224
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    if preprocessed(ref, x) is not x:
        x = rng.uniform(0, 255, size=(2, size, size, 3)).astype(np.float32)
    y = np.asarray(ref(x, training=False))
    xp = preprocessed(ref, x)
    src = f"/tmp/fs_{stem}.weights.h5"
    ref.save_weights(src)
    leg = f"/tmp/fs_{stem}.h5"
    save_legacy_h5(ref, leg)
    out = []
    for s_, d in [(src, f"/tmp/fs_{stem}_out.weights.h5"), (leg, f"/tmp/fs_{stem}_out.pt")]:
        r = subprocess.run(
            [ARCHC, "convert-weights", f"specs/{stem}.yaml", s_, d, "--from", "keras.applications"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert r.returncode == 0, r.stderr[-3000:]
    for b in ("keras", "torch"):
        subprocess.run(
            [ARCHC, "build", f"specs/{stem}.yaml", "--backend", b, "-o", f"/tmp/fs_{stem}_{b}.py"],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    km = load(f"/tmp/fs_{stem}_keras.py", f"fsk_{stem}").build_model()
    km.load_weights(f"/tmp/fs_{stem}_out.weights.h5")
    ek = float(np.abs(y - np.asarray(km(xp, training=False))).max() / np.abs(y).max())
    tm = load(f"/tmp/fs_{stem}_torch.py", f"fst_{stem}").build_model()
    tm.load_state_dict(torch.load(f"/tmp/fs_{stem}_out.pt"))
    tm.eval()
    with torch.no_grad():
        yt = tm(torch.from_numpy(xp.transpose(0, 3, 1, 2).copy())).numpy()
    et = float(np.abs(y - yt).max() / np.abs(y).max())
    print(f"{stem} @{size}: keras (from .weights.h5) {ek:.1e}, torch (from legacy .h5) {et:.1e}", flush=True)
    keras.utils.clear_session()
