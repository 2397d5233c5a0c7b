"""Emitters that are right for every spec: the networks people write next, not only the ones archc was built on.

Each test here is one of the failures a new user met (issue "Emitters that are right for every spec"): an
item with ``if:`` inside a branch or seq of a block, names lost in anonymous ``nn.Sequential`` indices, a
conditional width repeated at every use, a repeat of inverted residuals refused, a conditional shortcut
needing two copies of the body, and a build that said "wrote" for code that does not parse.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from archc.backends import get_backend

from archc.analysis import analyze
from archc.errors import ArchcError
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]


def emit(backend: str, path, sets=()) -> str:
    return get_backend(backend).emit(compile_spec(str(path), list(sets)))


def load_module(text: str, path: Path, name: str):
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# a block a person writes: a projection shortcut only when the shape changes, inside a branch of an add,
# a conditional seq inside a seq, and an item whose condition reads in_channels
CONDITIONAL_BLOCKS = """
name: cond_net
input: {height: 16, width: 16, channels: 3}
blocks:
  unit:
    params: {width: null, stride: 1, extra: false}
    body:
      - add:
          - - conv: {name: conv1, out: $width, kernel: 3, stride: $stride, padding: 1, bias: false}
            - bn: {name: bn1}
            - seq:
                name: tail
                body:
                  - relu: {name: act}
                  - conv: {name: conv2, out: $width, kernel: 3, padding: 1, if: $extra}
          - - seq:
                name: downsample
                if: "${stride != 1 or in_channels != width}"
                body:
                  - conv: {name: conv, out: $width, kernel: 1, stride: $stride, bias: false}
                  - bn: {name: bn}
      - relu: {name: relu}
network:
  - unit: {name: a, width: 8, stride: 2}
  - unit: {name: b, width: 8, extra: true}
  - gap: {name: pool}
  - dense: {name: fc, out: 5}
"""


def test_conditional_items_inside_branches_and_seqs_compile_and_keep_names(tmp_path):
    spec = tmp_path / "cond_net.yaml"
    spec.write_text(CONDITIONAL_BLOCKS)
    model = compile_spec(str(spec))
    src = get_backend("torch").emit(model)
    compile(src, "cond_net.py", "exec")
    assert "if stride != 1 or in_channels != width" in src  # the condition, once, as a person writes it
    torch = pytest.importorskip("torch")
    net = load_module(src, tmp_path / "cond_torch.py", "cond_torch").build_model().eval()
    keys = set(net.state_dict())
    # the spec's names at every level: branch, named seq, its items
    assert "a.branch2.downsample.conv.weight" in keys
    assert "a.branch1.tail.conv2.weight" not in keys  # extra=false: no conv2 in block a
    assert "b.branch1.tail.conv2.weight" in keys
    assert not any(k.startswith("b.branch2") for k in keys)  # b keeps its shape: identity shortcut
    r = analyze(model)
    assert sum(p.numel() for p in net.parameters()) == r.trainable
    with torch.no_grad():
        assert tuple(net(torch.randn(2, 3, 16, 16)).shape) == (2, 5)


def test_resnet50_state_dict_keys_follow_the_spec_names_at_every_level():
    torch = pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("g_resnet50", ROOT / "generated/torch/resnet50.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keys = list(module.build_model().state_dict())
    assert "layer1.rest.0.conv1.weight" in keys
    assert "layer1.first.downsample.conv.weight" in keys
    assert "layer4.rest.1.bn3.running_var" in keys
    # no bare integer from an anonymous nn.Sequential: an integer only ever follows a repeat ('rest')
    for k in keys:
        for prev, part in zip(k.split("."), k.split(".")[1:]):
            if part.isdigit():
                assert prev == "rest", k
    assert len(keys) == len(set(keys))
    del torch


def test_keras_layer_names_follow_the_spec_names():
    pytest.importorskip("keras")
    spec = importlib.util.spec_from_file_location("gk_resnet18", ROOT / "generated/keras/resnet18.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {layer.name for layer in module.build_model(input_shape=(64, 64, 3)).layers}
    assert {"layer1_rest_0_conv1", "layer2_first_downsample_conv", "layer2_first_residual"} <= names


def test_a_conditional_width_is_computed_once():
    src = (ROOT / "generated/torch/mobilenet_v2.py").read_text()
    cls = src[src.index("class InvertedResidual(") : src.index("class InvertedResidualStage")]
    init = cls[cls.index("def __init__") :]
    assert init.count("in_channels * expand") == 2  # the expansion width, and the width after the optional expansion
    assert init.count("if expand != 1 else in_channels") == 1
    ksrc = (ROOT / "generated/keras/resnet50.py").read_text()
    body = ksrc[ksrc.index("def bottleneck(") : ksrc.index("def bottleneck_stage(")]
    assert body.count("int(planes * (base_width / 64)) * groups") == 1


def test_one_if_in_init_and_one_in_forward_for_an_optional_part():
    src = (ROOT / "generated/torch/mobilenet_v2.py").read_text()
    cls = src[src.index("class InvertedResidual(") : src.index("class InvertedResidualStage")]
    assert cls.count("if expand != 1:") == 1
    assert cls.count("if self.expand_conv is not None:") == 1
    assert "self.use_residual = stride == 1 and in_channels == out" in cls
    assert re.search(r"if self\.use_residual:\n\s+x = x \+ identity", cls)


REPEAT_KEEPS_WIDTH = """
name: rep
input: {height: 12, width: 12, channels: 3}
blocks:
  grow:
    params: {width: null}
    body:
      - conv: {name: conv, out: "${max(in_channels, width)}", kernel: 3, padding: 1}
      - relu
network:
  - repeat: {name: stage, times: 3, body: [{grow: {name: block, width: 6}}]}
  - gap
  - dense: {name: fc, out: 2}
"""


def test_repeat_whose_width_is_fixed_after_the_first_iteration(tmp_path):
    spec = tmp_path / "rep.yaml"
    spec.write_text(REPEAT_KEEPS_WIDTH)
    model = compile_spec(str(spec))
    assert [it.out_shape[-1] for it in model.body.children[0].iterations] == [6, 6, 6]
    for backend in ("torch", "keras"):
        compile(get_backend(backend).emit(model), f"rep_{backend}.py", "exec")


def test_repeat_whose_width_varies_is_a_located_error(tmp_path):
    spec = tmp_path / "rep.yaml"
    spec.write_text(REPEAT_KEEPS_WIDTH.replace("${max(in_channels, width)}", "${in_channels + width}"))
    with pytest.raises(ArchcError) as e:
        compile_spec(str(spec))
    assert str(e.value).startswith(f"{spec}:11:5: repeat 'stage': the iterations give widths 9, 15")


def test_residual_shapes_must_match(tmp_path):
    spec = tmp_path / "res.yaml"
    spec.write_text(
        "name: res\ninput: {height: 8, width: 8, channels: 3}\nnetwork:\n"
        "  - residual:\n      body: [{conv: {out: 4, kernel: 1}}]\n"
    )
    with pytest.raises(ArchcError) as e:
        compile_spec(str(spec))
    expected = f"{spec}:4:5: residual 'residual': the body gives 8x8x4 but the identity gives 8x8x3"
    assert str(e.value).startswith(expected)


def test_names_are_the_users(tmp_path):
    """Names torchvision itself uses, and names the emitters use internally, are the user's."""
    spec = tmp_path / "names.yaml"
    spec.write_text(
        "name: names\ninput: {height: 8, width: 8, channels: 3}\nparams: {layers: 2}\n"
        "blocks:\n  unit:\n    params: {nn: null, x: 1, keras: 3, torch: 1, layers: 1, OrderedDict: 1}\n"
        "    body:\n      - conv: {name: input, out: $nn, kernel: $keras, padding: 1}\n"
        "      - relu: {name: output}\n"
        "network:\n  - unit: {name: features, nn: 4}\n"
        "  - repeat: {name: weights, times: $layers, body: [unit: {nn: 4}]}\n"
        "  - gap: {name: build}\n  - dense: {name: x, out: 2}\n"
    )
    model = compile_spec(str(spec))
    for backend in ("torch", "keras"):
        src = get_backend(backend).emit(model)
        compile(src, "names.py", "exec")
        tree = ast.parse(src)
        assert any(isinstance(n, ast.arg) and n.arg == "nn" for n in ast.walk(tree))
    torch = pytest.importorskip("torch")
    net = load_module(get_backend("torch").emit(model), tmp_path / "names_t.py", "names_t").build_model()
    assert "features.input.weight" in net.state_dict()
    assert tuple(net.eval()(torch.randn(1, 3, 8, 8)).shape) == (1, 2)


def test_a_name_that_shadows_a_torch_module_attribute_is_refused(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: {height: 8, width: 8, channels: 3}\nnetwork:\n  - relu: {name: forward}\n")
    with pytest.raises(ArchcError, match=r"name 'forward' would shadow torch\.nn\.Module\.forward"):
        compile_spec(str(spec))


def test_a_backend_that_emits_invalid_python_is_an_internal_error_and_writes_nothing(tmp_path):
    """Run in a fresh process: a bad backend registered for the test only."""
    out = tmp_path / "out.py"
    out.write_text("# the user's file\n")
    code = (
        "import sys\n"
        "from archc.backends import register\n"
        "class Bad:\n"
        "    name = 'bad'\n"
        "    def emit(self, model):\n"
        "        return 'x = nn.Sequential(a)) if b else nn.Identity(,\\n'\n"
        "register('bad', Bad)\n"
        "from archc.cli import main\n"
        f"sys.exit(main(['build', 'specs/resnet18.yaml', '--backend', 'bad', '-o', {str(out)!r}]))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    assert p.stderr.startswith("specs/resnet18.yaml:1:1: internal error: the bad backend produced code"), p.stderr
    assert "Traceback" not in p.stderr and "wrote" not in p.stdout
    assert out.read_text() == "# the user's file\n"


# ---------------------------------------------------------------- generated code as people write it (issue 22)


@pytest.mark.parametrize(
    ("spec", "class_name"),
    [
        ("resnet50", "ResNet50"),
        ("googlenet", "GoogLeNet"),
        ("mobilenet_v2", "MobileNetV2"),
        ("densenet121", "DenseNet121"),
        ("vgg16_bn", "VGG16BN"),
        ("efficientnet_b0", "EfficientNetB0"),
        ("convnext_tiny", "ConvNeXtTiny"),
        ("deeplabv3_resnet50", "DeepLabV3ResNet50"),
        ("lraspp_mobilenet_v3_large", "LRASPPMobileNetV3Large"),
        ("unet", "UNet"),
        ("resnext50_32x4d", "ResNeXt50_32X4D"),
        ("r3d_18", "R3D_18"),
    ],
)
def test_model_class_names_are_written_as_people_write_them(spec, class_name):
    model = compile_spec(str(ROOT / "specs" / f"{spec}.yaml"))
    assert model.class_name == class_name
    tree = ast.parse((ROOT / "generated/torch" / f"{spec}.py").read_text())
    assert class_name in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    keras_src = (ROOT / "generated/keras" / f"{spec}.py").read_text()
    assert f'name="{spec}")' in keras_src  # the Keras model keeps the spec's name


def test_class_name_in_the_spec_names_the_model_class(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny_net\nclass_name: TinyNetV1\ninput: {height: 8, width: 8, channels: 3}\n"
        "network:\n  - conv: {name: conv, out: 4, kernel: 3}\n  - gap: {name: pool}\n  - dense: {name: fc, out: 2}\n"
    )
    model = compile_spec(str(spec))
    assert model.class_name == "TinyNetV1"
    src = get_backend("torch").emit(model)
    assert "class TinyNetV1(nn.Module):" in src and "return TinyNetV1()" in src
    keras_src = get_backend("keras").emit(model)
    assert '"""TinyNetV1: input (N, 8, 8, 3) NHWC' in keras_src and 'name="tiny_net")' in keras_src


def test_a_block_whose_class_is_the_model_class_is_refused(tmp_path):
    spec = tmp_path / "clash.yaml"
    spec.write_text(
        "name: res_net\ninput: {height: 8, width: 8, channels: 3}\n"
        "blocks:\n  res_net_:\n    body: [relu]\n"
        "network:\n  - res_net_: {name: a}\n"
    )
    with pytest.raises(ArchcError, match=r"block 'res_net_' would become class ResNet, the model's class name"):
        compile_spec(str(spec))


def _default_arguments(src: str, module, prefix: str, helpers: dict | None = None) -> list[str]:
    """The calls ``prefix.Class(...)`` (or ``Helper(...)``, a subclass of ``helpers[Helper]`` that keeps its
    signature) in ``src`` with a keyword argument written as a literal equal to the default in the signature."""
    import inspect

    found = []
    for node in ast.walk(ast.parse(src)):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == prefix:
            cls = getattr(module, func.attr, None)
        elif isinstance(func, ast.Name):
            cls = (helpers or {}).get(func.id)
        else:
            continue
        if not inspect.isclass(cls):
            continue
        params = inspect.signature(cls).parameters
        for kw in node.keywords:
            if kw.arg in params and isinstance(kw.value, ast.Constant):
                default = params[kw.arg].default
                if type(kw.value.value) is type(default) and kw.value.value == default:
                    found.append(ast.unparse(node))
    return found


def test_generated_calls_leave_out_the_frameworks_defaults():
    torch_src = (ROOT / "generated/torch/resnet50.py").read_text()
    assert "self.bn1 = nn.BatchNorm2d(64)\n" in torch_src
    assert "eps=1e-05" not in torch_src and "momentum=0.1" not in torch_src
    nn = pytest.importorskip("torch.nn")
    torch_helpers = {
        "BatchNorm2dNoScale": nn.BatchNorm2d,
        "BatchNorm2dBiased": nn.BatchNorm2d,
        "LayerNorm2d": nn.LayerNorm,
    }
    for path in sorted((ROOT / "generated/torch").glob("*.py")):
        assert not _default_arguments(path.read_text(), nn, "nn", torch_helpers), path.name
    keras = pytest.importorskip("keras")
    keras_helpers = {"BatchNormalizationUnbiased": keras.layers.BatchNormalization}
    for path in sorted((ROOT / "generated/keras").glob("*.py")):
        assert not _default_arguments(path.read_text(), keras.layers, "layers", keras_helpers), path.name


def test_a_blocks_param_is_written_even_where_its_default_is_the_frameworks(tmp_path):
    """Only a literal equal to the default is left out: a block's param stays symbolic (``eps=eps``)."""
    spec = tmp_path / "params.yaml"
    spec.write_text(
        "name: params\ninput: {height: 8, width: 8, channels: 3}\n"
        "blocks:\n  unit:\n    params: {eps: 1.0e-5, rate: 0.5}\n"
        "    body:\n      - conv: {name: conv, out: 4, kernel: 3, stride: 1, dilation: 1, bias: true}\n"
        "      - bn: {name: bn, eps: $eps, momentum: 0.1}\n      - dropout: {name: drop, rate: $rate}\n"
        "network:\n  - unit: {name: a}\n  - bn: {name: bn, eps: 1.0e-5, momentum: 0.01}\n"
        "  - gap: {name: pool}\n  - dropout: {name: drop, rate: 0.5}\n  - dense: {name: fc, out: 2, bias: true}\n"
    )
    model = compile_spec(str(spec))
    src = get_backend("torch").emit(model)
    assert "nn.Conv2d(in_channels, 4, kernel_size=3)" in src
    assert "nn.BatchNorm2d(4, eps=eps)" in src and "nn.Dropout(p=rate)" in src
    assert "nn.BatchNorm2d(4, momentum=0.01)" in src and "nn.Dropout()" in src and "nn.Linear(4, 2)" in src
    ksrc = get_backend("keras").emit(model)
    assert "epsilon=eps, momentum=0.9," in ksrc and "epsilon=1e-05, name=" in ksrc
    assert "use_bias" not in ksrc


def test_default_tables_are_the_frameworks_own_defaults():
    """backends/*/ops.py DEFAULTS against the installed frameworks' signatures."""
    import inspect

    from backends.keras.ops import DEFAULTS as KERAS_DEFAULTS
    from backends.torch.ops import DEFAULTS as TORCH_DEFAULTS

    nn = pytest.importorskip("torch.nn")
    for cls, args in TORCH_DEFAULTS.items():
        params = inspect.signature(getattr(nn, cls if hasattr(nn, cls) else f"{cls}2d")).parameters
        assert {a: params[a].default for a in args} == args, cls
    keras = pytest.importorskip("keras")
    for cls, args in KERAS_DEFAULTS.items():
        params = inspect.signature(getattr(keras.layers, cls)).parameters
        assert {a: params[a].default for a in args} == args, cls


def test_no_sequential_wraps_a_lone_stateless_module_or_a_stateless_sequential():
    """A one-item nn.Sequential (or one directly inside another) is only left where its name is part of state_dict
    keys: around modules with weights (``layer1.rest.0.conv1.weight``)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    for path in sorted((ROOT / "generated/torch").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"g_seq_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with torch.device("meta"):
            net = module.build_model()
        for name, m in net.named_modules():
            if isinstance(m, nn.Sequential):
                children = list(m.children())
                assert len(children) != 1 or children[0].state_dict(), (path.name, name)
                for child in children:
                    assert not isinstance(child, nn.Sequential) or child.state_dict(), (path.name, name)
                # a level of one item is that item: no nn.Sequential(OrderedDict(block=...)), in a loop or not
                named = [n for n, _ in m.named_children()]
                assert len(named) != 1 or named[0].isdigit(), (path.name, name, named)
    src = (ROOT / "generated/torch/inception_v3.py").read_text()
    assert "self.branch3 = nn.MaxPool2d(kernel_size=3, stride=2)\n" in src


@pytest.mark.parametrize(
    ("stem", "key"),
    [
        ("resnet50", "layer1.rest.0.conv1.weight"),  # a repeat of one block: nn.Sequential(*[Bottleneck(...)])
        ("densenet121", "denseblock1.stack.0.norm1.weight"),  # dense_connect of one layer
        ("googlenet", "aux1.fc1.weight"),  # a head of one block: torchvision's aux1.fc1.weight
        ("inception_v3", "Mixed_5b.branch1x1.conv.weight"),  # a branch of one named item: torchvision's name
        ("inception_v3", "Mixed_7b.branch2.concat.branch3x3_2a.conv.weight"),
    ],
)
def test_a_level_of_one_item_is_that_item(stem, key):
    """The lowering's naming rule (archc.lower._one_level): the item takes the level's place in the module tree
    and the IR paths, the same in the generated model's state_dict and in the Keras layer names."""
    torch = pytest.importorskip("torch")
    from archc.convert import weighted_leaves
    from archc.pipeline import compile_spec

    spec = importlib.util.spec_from_file_location(f"g_one_{stem}", ROOT / "generated/torch" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.device("meta"):
        keys = set(module.build_model().state_dict())
    assert key in keys
    assert key.rpartition(".")[0] in {
        n.path for n in weighted_leaves(compile_spec(str(ROOT / "specs" / f"{stem}.yaml")))
    }
    keras_src = (ROOT / "generated/keras" / f"{stem}.py").read_text()
    assert "_block_" not in keras_src and "_head_" not in keras_src


def test_a_head_of_one_layer_keeps_its_level(tmp_path):
    """A head's name is its output's (Keras' output layer): a head of one layer keeps the level around it in both
    backends, a head of one block call is that call (googlenet's aux1 above)."""
    spec = tmp_path / "one_layer_head.yaml"
    spec.write_text(
        "name: one_layer_head\ninput: {height: 16, width: 16, channels: 3}\nnetwork:\n"
        "  - conv: {name: c1, out: 8, kernel: 3}\n  - gap: {name: pool}\n  - dense: {name: fc, out: 10}\n"
        "heads:\n  aux:\n    at: pool\n    body:\n      - dense: {out: 5}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "archc", "build", str(spec), "--backend", "all", "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert 'name="aux_dense"' in (tmp_path / "out/keras/one_layer_head.py").read_text()
    assert (
        "self.aux = nn.Sequential(OrderedDict(dense=nn.Linear(8, 5)))"
        in (tmp_path / "out/torch/one_layer_head.py").read_text()
    )


def test_the_summary_names_a_level_of_one_item_by_its_item():
    """``archc summary --depth 3`` on ResNet-18: iteration 0 of ``layer1.rest`` is a basic_block (the item), not the
    seq of one item the lowering collapsed, which shares its path."""
    from archc.analysis import collapse
    from archc.pipeline import compile_spec

    model = compile_spec(str(ROOT / "specs/resnet18.yaml"))
    rows = {r.path: r.kind for r in collapse(model, analyze(model), 3)}
    assert rows["layer1.rest.0"] == "basic_block"
