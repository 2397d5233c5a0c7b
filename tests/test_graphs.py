"""Networks that are graphs: ``from:`` references, blocks with several inputs, several outputs, ``upsample: {like:}``.

Each valid case builds in both backends and computes the same numbers (tests/rank_parity.py: float64, weights
converted through the IR); the analysis' shapes and counts equal the PyTorch model's. Each invalid case is one
located error naming the places involved. The generated code keeps the outputs references read in named locals.
"""

from __future__ import annotations

import numpy as np
import pytest

from archc.analysis import analyze
from archc.errors import ArchcError
from archc.pipeline import compile_spec

torch = pytest.importorskip("torch")
pytest.importorskip("keras")

from tests.rank_parity import load, parity  # noqa: E402

FLOAT64_BOUND = 1e-12  # both backends run the same algorithm in float64 (seen: 5e-16)

HEAD = "name: g\ninput: {name: image, height: 16, width: 16, channels: 3}\n"

CASES = {
    # a long skip over a stride-2 step and back up, concatenated (a U-Net level)
    "unet_level": HEAD
    + """
network:
  - conv: {name: enc, out: 4, kernel: 3, padding: 1}
  - relu: {name: act}
  - maxpool: {kernel: 2, stride: 2}
  - conv: {out: 8, kernel: 3, padding: 1}
  - conv_transpose: {name: up, out: 4, kernel: 2, stride: 2}
  - concat: {from: [act, up]}
  - conv: {out: 2, kernel: 1}
""",
    # an item reads an earlier output and the network's input; add and mul of named outputs
    "from_and_input": HEAD
    + """
network:
  - conv: {name: a, out: 4, kernel: 3, padding: 1}
  - conv: {name: b, from: image, out: 4, kernel: 1}
  - add: {from: [a, b]}
  - sigmoid: {name: gate}
  - mul: {from: [gate, a]}
""",
    # a saved output followed by what PyTorch would do in place (a ReLU, a residual's +=): it must not change
    "in_place_after_a_saved_output": HEAD
    + """
network:
  - conv: {name: a, out: 3, kernel: 3, padding: 1}
  - relu
  - residual:
      body:
        - conv: {out: 3, kernel: 3, padding: 1}
        - bn: {name: kept}
  - relu: {name: last}
  - concat: {from: [a, kept, last]}
""",
    # a block with two inputs (its second by name at the call), resized to the other's size (an FPN's top-down
    # step), and several outputs, one of them the network's input branch
    "two_inputs_like_and_outputs": HEAD
    + """
blocks:
  merge_up:
    params: {out: null}
    inputs: [top, lateral]
    body:
      - upsample: {like: lateral}
      - add: {from: [lateral, upsample]}
      - conv: {out: $out, kernel: 3, padding: 1}
network:
  - conv: {name: c1, out: 8, kernel: 3, stride: 2, padding: 1}
  - relu: {name: r1}
  - conv: {name: c2, out: 8, kernel: 3, stride: 2, padding: 1}
  - relu: {name: r2}
  - merge_up: {name: p1, out: 8, from: {lateral: r1}}
  - conv: {name: side, from: image, out: 8, kernel: 1}
  - upsample: {name: back, from: p1, like: image, mode: bilinear}
outputs: {fine: back, coarse: r2, side: side}
""",
    # a block's second input's width in its expressions (milesial's bilinear U-Net `Up`: a double conv whose middle
    # width is half the concatenation's), inside a repeat too: the Keras function reads it off the tensor
    "second_input_width_in_expressions": HEAD
    + """
blocks:
  up:
    params: {out: null}
    inputs: [x, skip]
    body:
      - upsample: {scale: 2, mode: bilinear, align_corners: true}
      - concat: {from: [skip, upsample]}
      - conv: {out: "${(in_channels + skip_channels) // 2}", kernel: 3, padding: 1}
      - repeat: {times: 2, body: [conv: {out: "${skip_channels + out}", kernel: 1}]}
      - conv: {out: $out, kernel: 1}
network:
  - conv: {name: enc, out: 6, kernel: 3, padding: 1}
  - maxpool: {kernel: 2, stride: 2}
  - conv: {out: 4, kernel: 3, padding: 1}
  - up: {out: 3, from: {skip: enc}}
""",
    # a block reads its own main input by name (a hand-written shortcut), and a block reused at two levels
    "block_reads_its_input": HEAD
    + """
blocks:
  shortcut_cat:
    params: {out: null}
    inputs: [x]
    body:
      - conv: {out: $out, kernel: 3, padding: 1}
      - bn
      - relu: {name: act}
      - concat: {from: [x, act]}
network:
  - shortcut_cat: {out: 4}
  - maxpool: {kernel: 2, stride: 2}
  - shortcut_cat: {out: 5}
""",
    # outputs of a headless model (timm's features_only): the stages, without the classifier
    "features_only": HEAD
    + """
params: {classes: 10}
network:
  - conv: {name: stage1, out: 4, kernel: 3, stride: 2, padding: 1}
  - conv: {name: stage2, out: 8, kernel: 3, stride: 2, padding: 1}
top:
  - gap
  - dense: {out: $classes}
outputs: {c1: stage1, c2: stage2}
""",
    # dotted paths into named seqs (a backbone's stages, as torchvision's IntermediateLayerGetter taps them), from
    # inside and outside them: the seq stays one module (the same state_dict names), its items called one by one
    "dotted_paths_into_named_seqs": HEAD
    + """
network:
  - seq:
      name: backbone
      body:
        - conv: {name: stem, out: 4, kernel: 3, padding: 1}
        - relu
        - seq:
            name: stage1
            body:
              - conv: {name: conv, out: 8, kernel: 3, stride: 2, padding: 1}
              - bn
              - relu: {name: act}
        - conv: {name: stage2, from: stage1.act, out: 16, kernel: 3, stride: 2, padding: 1}
        - relu: {name: act2}
  - upsample: {name: up, like: backbone.stage1.act}
  - conv: {name: lat, from: backbone.stage1.act, out: 16, kernel: 1}
  - add: {from: [lat, up]}
  - conv: {name: head, out: 2, kernel: 1}
outputs: {c3: backbone.stage1, c4: backbone.act2, out: head}
""",
    # several outputs and an auxiliary head: the head's output in training only (PyTorch), beside the named ones
    "outputs_and_a_head": HEAD
    + """
network:
  - conv: {name: c1, out: 4, kernel: 3, padding: 1}
  - conv: {name: c2, out: 4, kernel: 3, stride: 2, padding: 1}
top:
  - gap
  - dense: {name: fc, out: 5}
heads:
  aux: {at: c1, loss_weight: 0.3, body: [gap, dense: {out: 5}]}
outputs: {feat: c2, logits: fc}
""",
}


def write(tmp_path, text: str, name: str = "g.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_builds_in_both_backends_and_agrees(case, tmp_path):
    path = write(tmp_path, CASES[case])
    sets = ["include_top=false"] if case == "features_only" else []
    _, _, err = parity(path, sets)
    assert err <= FLOAT64_BOUND


@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_analysis_equals_the_torch_model(case, tmp_path):
    path = write(tmp_path, CASES[case])
    model = compile_spec(str(path), ["include_top=false"] if case == "features_only" else [])
    report = analyze(model)
    from archc.backends import get_backend

    net = load(get_backend("torch").emit(model), f"graphs_{case}").build_model().eval()
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert (report.trainable, report.non_trainable) == (params, stats)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        y = net(x)
    outs = y if isinstance(y, dict) else {"main": y}
    if model.outputs:
        assert list(outs) == [n for n, _ in model.outputs]
        shapes = {n.path: n.out_shape for n in _walk(model.body)}
        for name, key in model.outputs:
            want = model.input_shape if key == model.input_name else shapes[key]
            assert tuple(outs[name].shape[1:]) == (want[-1], *want[:-1]), name
    else:
        want = model.body.out_shape
        assert tuple(y.shape[1:]) == (want[-1], *want[:-1])


def _walk(node):
    from archc import ir

    return ir.walk(node)


def test_outputs_are_a_dict_in_training_and_eval_in_both_backends(tmp_path):
    path = write(tmp_path, CASES["two_inputs_like_and_outputs"])
    model = compile_spec(str(path))
    from archc.backends import get_backend

    net = load(get_backend("torch").emit(model), "graphs_outputs_t").build_model()
    x = torch.randn(1, 3, 16, 16)
    for mode in (True, False):
        net.train(mode)
        y = net(x)
        assert list(y) == ["fine", "coarse", "side"]
    kmod = load(get_backend("keras").emit(model), "graphs_outputs_k")
    k = kmod.build_model()
    y = k(np.zeros((1, 16, 16, 3), "float32"))
    assert sorted(y) == ["coarse", "fine", "side"]
    assert tuple(y["fine"].shape) == (1, 16, 16, 8)


def test_like_follows_the_size_the_model_is_called_with(tmp_path):
    """``upsample: {like: image}``: the output has the input's size at any input size (PyTorch reads it at run
    time; Keras' functional model is built for one size, as `size: input` is)."""
    path = write(tmp_path, CASES["two_inputs_like_and_outputs"])
    model = compile_spec(str(path))
    from archc.backends import get_backend

    net = load(get_backend("torch").emit(model), "graphs_like_t").build_model().eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, 24, 40))
    assert tuple(y["fine"].shape) == (1, 8, 24, 40)


def test_generated_code_keeps_read_outputs_by_name(tmp_path):
    """The U-Net's generated forward reads like the hand-written reference (tests/references/unet.py)."""
    from archc.backends import get_backend

    model = compile_spec("specs/unet.yaml")
    torch_src = get_backend("torch").emit(model)
    for line in (
        "inc = self.inc(x)",
        "down1 = self.down1(inc)",
        "down3 = self.down3(down2)",
        "x = self.down4(down3)",
        "x = self.up1(x, down3)",
        "x = self.up4(x, inc)",
        "def forward(self, x, skip):",
        "x = torch.cat([skip, up], 1)",
        "def __init__(self, in_channels, skip_channels, out):",
    ):
        assert line in torch_src, line
    keras_src = get_backend("keras").emit(model)
    for line in (
        'inc = unet_double_conv(inputs, out=width, name="inc")',
        'x = unet_up(x, down3, out=width * 8, name="up1")',
        "def unet_up(x, skip, out, name=None):",
        'x = layers.Concatenate(name=f"{name}_concat")([skip, up])',
    ):
        assert line in keras_src, line


# (network text, expected message start, the lines each note must name)
ERRORS = {
    # not a name or a dotted path of names (a module index, as a PyTorch user writes `layer1.0`)
    "not_a_reference": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\n  - relu: {from: a.0}\n",
        "'a.0' is not a reference: the name of an earlier item, an input, or a dotted path of names",
        5,
    ),
    "unknown": (
        "network:\n  - conv: {name: enc, out: 4, kernel: 1}\n  - concat: {from: [enc, enk]}\n",
        "unknown output 'enk' in the network (did you mean 'enc'?)",
        5,
    ),
    "later": (
        "network:\n  - concat: {from: [image, dec]}\n  - conv: {name: dec, out: 4, kernel: 1}\n",
        "'dec' is not an earlier output here: it is defined later",
        4,
    ),
    "itself": ("network:\n  - conv: {name: a, from: a, out: 4, kernel: 1}\n", "'a' is this item", 4),
    "nested": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\n"
        "  - concat: {branches: [[conv: {out: 4, kernel: 1}, add: {from: [a, conv]}], []]}\n",
        "'from: [",
        5,
    ),
    "dotted_into_a_branch": (
        "network:\n  - concat: {name: m, branches: [[conv: {name: c, out: 4, kernel: 1}], []]}\n"
        "  - relu: {from: m.branch1.c}\n",
        "'m.branch1.c' reaches inside item 'm'",
        5,
    ),
    "conditional_reader_in_a_named_seq": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\n"
        "  - seq: {name: s, body: [relu, conv: {if: true, from: a, out: 4, kernel: 1}]}\n",
        "an item under an 'if:' inside a named seq cannot read an output by name",
        5,
    ),
    "conditional": (
        "network:\n  - conv: {name: a, if: false, out: 4, kernel: 1}\n  - relu: {from: a}\n",
        "'a' names item 'a', which is built only when its 'if:'",
        5,
    ),
    "spatial_mismatch": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\n  - maxpool: {name: p, kernel: 2, stride: 2}\n"
        "  - concat: {from: [a, p]}\n",
        "concat 'concat': 'a' gives 16x16x4 but 'p' gives 8x8x4",
        6,
    ),
    "input_name_taken": ("network:\n  - conv: {name: image, out: 4, kernel: 1}\n", "'image' is the name of", 4),
    "unknown_output": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\noutputs: {y: b}\n",
        "unknown output 'b' in the network",
        5,
    ),
    "missing_block_input": (
        "blocks:\n  up:\n    inputs: [x, skip]\n    body: [concat: {from: [skip, x]}]\nnetwork:\n  - up\n",
        "block 'up' needs its input 'skip'",
        8,
    ),
    "unknown_block_input": (
        "blocks:\n  up:\n    inputs: [x, skip]\n    body: [concat: {from: [skip, x]}]\n"
        "network:\n  - up: {from: {skp: image}}\n",
        "block 'up' has no input 'skp' (its inputs: x, skip) (did you mean 'skip'?)",
        8,
    ),
    # an output nothing reads (the next item reads another by name): Keras' functional model would drop it
    "unread_output": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\n  - conv: {name: b, out: 4, kernel: 1}\n"
        "  - conv: {from: a, out: 4, kernel: 1}\n",
        "the output of 'b' is never read: the next item, 'conv3', reads a by name",
        5,
    ),
    # with outputs, the last item is one of them (the classifier of a features-only spec: include_top=false)
    "last_item_not_an_output": (
        "network:\n  - conv: {name: a, out: 4, kernel: 1}\ntop:\n  - gap\n  - dense: {out: 3}\noutputs: {c1: a}\n",
        "the output of 'dense', the last item of the network, is not one of its `outputs:`",
        7,
    ),
    "block_cannot_read_the_callers": (
        "blocks:\n  b:\n    body: [relu: {from: image}]\nnetwork:\n  - b\n",
        "unknown output 'image' in block 'b'",
        5,
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_reference_errors_are_located(case, tmp_path, cli):
    network, message, line = ERRORS[case]
    path = write(tmp_path, HEAD + network)
    r = cli("check", path)
    assert r.code == 2, r
    first = r.err.splitlines()[0]
    assert first.startswith(f"{path}:{line}:"), r.err
    assert message in first, r.err
    assert "Traceback" not in r.err


def test_a_later_name_names_both_places(tmp_path):
    path = write(tmp_path, HEAD + ERRORS["later"][0])
    with pytest.raises(ArchcError) as exc:
        compile_spec(str(path))
    text = str(exc.value)
    assert f"{path}:4:" in text and f"{path}:5:" in text and "'dec' is defined here" in text, text


def test_outputs_can_be_set_on_the_command_line(tmp_path, cli):
    """`--set` changes the outputs as any other key (timm's features_only: include_top=false and the stages)."""
    path = write(tmp_path, CASES["features_only"])
    r = cli("summary", path, "--set", "include_top=false", "--set", "outputs={c2: stage2}")
    assert r.code == 0, r.err
    assert "output c2: (4, 4, 8)" in r.out and "output c1" not in r.out, r.out


def test_outputs_and_heads_in_training_and_eval(tmp_path):
    """PyTorch returns the heads' outputs beside the named ones in training mode only; Keras' model always (its
    inference_model keeps the named outputs)."""
    from archc.backends import get_backend

    model = compile_spec(str(write(tmp_path, CASES["outputs_and_a_head"])))
    net = load(get_backend("torch").emit(model), "graphs_heads_t").build_model()
    x = torch.randn(2, 3, 16, 16)
    assert list(net.train()(x)) == ["feat", "logits", "aux"]
    assert list(net.eval()(x)) == ["feat", "logits"]
    kmod = load(get_backend("keras").emit(model), "graphs_heads_k")
    k = kmod.build_model()
    assert sorted(k(np.zeros((1, 16, 16, 3), "float32"))) == ["aux", "feat", "logits"]
    assert sorted(kmod.inference_model(k)(np.zeros((1, 16, 16, 3), "float32"))) == ["feat", "logits"]


def test_a_shape_mismatch_of_named_outputs_names_where_they_are_made(tmp_path):
    path = write(tmp_path, HEAD + ERRORS["spatial_mismatch"][0])
    with pytest.raises(ArchcError) as exc:
        compile_spec(str(path))
    text = str(exc.value)
    assert f"{path}:4:5: note: 'a' is made here" in text and f"{path}:5:5: note: 'p' is made here" in text, text


def test_the_diagram_draws_references_as_edges_and_outputs_as_outputs(tmp_path):
    """A reference is an edge from where its output was made (not a cluster around it); each named output an
    output node fed from its item."""
    from archc.diagram import build_graph

    model = compile_spec(str(write(tmp_path, CASES["two_inputs_like_and_outputs"])))
    g = build_graph(model, depth=None)
    ids = {name: attrs["id"] for name, attrs in g.nodes.items()}
    edges = {(ids[a], ids[b]) for a, b, _, _ in g.edges}
    assert ("input", "node-side") in edges  # `side` reads the network input by name
    assert ("node-r1", "node-p1.add-merge") in edges  # the block's second input, from where r1 was made
    outs = {b for _, b in edges if b.startswith("output-")}
    assert outs == {"output-fine", "output-coarse", "output-side"}
    assert ("node-r2", "output-coarse") in edges and ("node-side", "output-side") in edges
