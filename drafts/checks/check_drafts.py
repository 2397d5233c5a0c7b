"""Checks of the draft specs through TODAY's archc (before issue 20 lands), against their references.

Not a test (CI does not run drafts/); run it by hand from the repository root:

    .venv/bin/python drafts/checks/check_drafts.py            # all; about a minute on one core
    .venv/bin/python drafts/checks/check_drafts.py irv2 m5    # some

Each draft is rewritten into a twin that today's archc builds, with the same names, widths and (where it matters)
numbers, and the twin is compared with the reference:

- ``irv2``: drafts/specs/inception_resnet_v2.yaml with its blocks inlined and the ``scale: {factor}`` items left out
  (no parameters): counts equal keras.applications.InceptionResNetV2's; every generated Keras layer maps through
  drafts/stdlib/keras_applications/inception_resnet_v2.yaml (rules and '#' order) onto keras.applications' layer of
  the same shapes, one to one; with keras.applications' (random) weights, the up-projections' kernel and bias
  multiplied by the block's factor (x + conv(r) * f is x + conv_f(r)), the logits are keras.applications'.
- ``video``: r3d_18, mc3_18, r2plus1d_18 with every (T, H, W) list cut to (T, W) and the clip as height: the
  generated state_dict maps through drafts/stdlib/torchvision/video_resnet.yaml onto torchvision's, key for key,
  with torchvision's shapes less the H kernel axis; torchvision's model on clips of height 1 (where only the
  centre row of each H kernel meets the input) computes the twin's logits given those centre rows.
- ``m5``: drafts/specs/m5.yaml as a height-1 2-D network: state_dict keys equal tests/references/m5.py's, logits equal.
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DRAFTS = ROOT / "drafts"
sys.path.insert(0, str(ROOT))


def build(spec: Path, backend: str, out: Path):
    """``archc build`` of ``spec``; the generated module, imported."""
    archc = [sys.executable, "-m", "archc", "build", str(spec), "--backend", backend, "-o", str(out)]
    subprocess.run(archc, check=True, capture_output=True)
    loader = importlib.util.spec_from_file_location(out.stem, out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def with_blocks(spec: dict, stdlib: str) -> dict:
    spec = copy.deepcopy(spec)
    spec["blocks"] = yaml.safe_load((DRAFTS / "stdlib" / stdlib).read_text())["blocks"]
    return spec


def check_irv2(tmp: Path) -> None:
    import keras
    import numpy as np

    from archc import weights as W
    from archc.analysis import analyze
    from archc.keras_applications import _keras_layout, _resolve, leaf_layers
    from archc.mapping import load_mapping
    from archc.pipeline import compile_spec

    spec = yaml.safe_load((DRAFTS / "specs/inception_resnet_v2.yaml").read_text())
    spec = with_blocks(spec, "inception_resnet_v2.yaml")
    for block in spec["blocks"].values():
        for item in block["body"]:
            if "residual" in item:
                item["residual"]["body"] = [x for x in item["residual"]["body"] if "scale" not in x]
    path = tmp / "inception_resnet_v2.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    model = compile_spec(str(path), [])
    a = analyze(model)
    ref = keras.applications.InceptionResNetV2(weights=None, classifier_activation=None)
    trainable = sum(int(np.prod(w.shape)) for w in ref.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in ref.non_trainable_weights)
    print(f"irv2: keras.applications {trainable:,} / {frozen:,}; twin {a.trainable:,} / {a.non_trainable:,}")
    assert (a.trainable, a.non_trainable) == (trainable, frozen) == (55_813_192, 60_544)

    mapping = load_mapping(DRAFTS / "stdlib/keras_applications/inception_resnet_v2.yaml", "keras.applications")
    declared = [layer for _, layer in W.layers(_keras_layout(), model)]
    ref_layers = {layer.name: layer for layer in leaf_layers(ref) if layer.weights}
    gen_to_ref = _resolve(mapping, declared, list(ref_layers))
    assert sorted(gen_to_ref.values()) == sorted(ref_layers), "not one to one"

    rng = np.random.default_rng(0)
    for layer in ref_layers.values():
        arrays = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "variance" in w.path:
                arrays.append(rng.uniform(0.5, 1.5, shape))
            elif len(shape) == 4:
                arrays.append(rng.standard_normal(shape) / np.sqrt(np.prod(shape[:3])))
            else:
                arrays.append(rng.standard_normal(shape) * 0.1)
        layer.set_weights([x.astype("float32") for x in arrays])
    gen = build(path, "keras", tmp / "irv2_keras.py").build_model()
    factors = {"block35_": 0.17, "block17_": 0.1, "block8_": 0.2}
    for layer in declared:
        arrays = [np.asarray(x) for x in ref_layers[gen_to_ref[layer.name]].get_weights()]
        if layer.name.endswith("_up"):
            f = 1.0 if layer.name == "block8_10_up" else factors[layer.name[: layer.name.index("_") + 1]]
            arrays = [x * np.float32(f) for x in arrays]
        gen.get_layer(layer.name).set_weights(arrays)
    x = rng.standard_normal((2, 299, 299, 3)).astype("float32")
    want, got = np.asarray(ref(x, training=False)), np.asarray(gen(x, training=False))
    err = float(np.abs(want - got).max() / np.abs(want).max())
    print(f"irv2: {len(declared)} layers mapped one to one; logits relative error {err:.2e}")
    assert err < 1e-5


def check_video(tmp: Path) -> None:
    import torch

    from archc.mapping import load_mapping
    from tests.torchvision_fixture import import_torchvision

    tv = import_torchvision()
    mapping = load_mapping(DRAFTS / "stdlib/torchvision/video_resnet.yaml")

    def cut(o):
        if isinstance(o, dict):
            for k, v in list(o.items()):
                if k in ("kernel", "stride", "padding") and isinstance(v, list) and len(v) == 3:
                    o[k] = [v[0], v[2]]
                else:
                    cut(v)
        elif isinstance(o, list):
            for v in o:
                cut(v)

    for stem in ("r3d_18", "mc3_18", "r2plus1d_18"):
        spec = with_blocks(yaml.safe_load((DRAFTS / f"specs/{stem}.yaml").read_text()), "video_resnet.yaml")
        inp = spec["input"]
        spec["input"] = {"height": inp["depth"], "width": inp["width"], "channels": inp["channels"]}
        cut(spec)
        path = tmp / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        twin = build(path, "torch", tmp / f"{stem}_torch.py").build_model().eval()
        torch.manual_seed(0)
        ref = getattr(tv.models.video, stem)(weights=None).eval()
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.1)
        theirs = ref.state_dict()
        names = mapping.names(twin.state_dict())
        assert sorted(names.values()) == sorted(theirs), stem
        new = {}
        for k, v in twin.state_dict().items():
            t = theirs[names[k]]
            if t.dim() == 5:
                assert v.shape == t.shape[:3] + t.shape[4:], (stem, k, v.shape, t.shape)
                t = t[:, :, :, t.shape[3] // 2, :]
            assert v.shape == t.shape, (stem, k)
            new[k] = t
        twin.load_state_dict(new)
        for clip, width in ((8, 32), (5, 40), (16, 112)):
            x = torch.randn(2, 3, clip, 1, width)
            with torch.no_grad():
                want, got = ref(x), twin(x[:, :, :, 0, :])
            err = ((want - got).abs().max() / want.abs().max()).item()
            print(f"video: {stem} clip {clip} x 1 x {width}: {len(names)} tensors mapped; relative error {err:.2e}")
            assert err < 1e-5


def check_m5(tmp: Path) -> None:
    import torch

    from tests.references.m5 import M5

    spec = yaml.safe_load((DRAFTS / "specs/m5.yaml").read_text())
    spec["input"] = {"height": 1, "width": spec["input"]["length"], "channels": spec["input"]["channels"]}
    for item in spec["network"]:
        for attrs in item.values() if isinstance(item, dict) else ():
            for k in ("kernel", "stride", "padding"):
                if isinstance(attrs, dict) and k in attrs:
                    attrs[k] = [0 if k == "padding" else 1, attrs[k]]
    path = tmp / "m5.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    twin = build(path, "torch", tmp / "m5_torch.py").build_model().eval()
    torch.manual_seed(0)
    ref = M5(classes=10).eval()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.normal_()
            m.bias.data.normal_()
    sd = ref.state_dict()
    assert set(sd) == set(twin.state_dict())
    twin.load_state_dict({k: v.unsqueeze(2) if v.dim() == 3 else v for k, v in sd.items()})
    x = torch.randn(2, 1, 32000)
    with torch.no_grad():
        want, got = ref(x), twin(x.unsqueeze(2))
    err = ((want - got).abs().max() / want.abs().max()).item()
    print(f"m5: state_dict keys equal the reference's; logits relative error {err:.2e}")
    assert err < 1e-5


CHECKS = {"irv2": check_irv2, "video": check_video, "m5": check_m5}

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        for name in sys.argv[1:] or CHECKS:
            CHECKS[name](Path(d))
    print("ok")
