"""The generated Keras model's weights: per weighted IR node kind, its layer and ``layer.get_weights()`` in order.

Every layer with weights is named after its IR path with '.' -> '_' (``layer1_rest_0_conv1``). Keras
keeps kernels channels last, as the canonical layouts of :mod:`archc.weights` do: every transform is the
identity. tests/test_weight_layouts.py builds every spec's model and checks these against its layers' weights.
"""

from __future__ import annotations

from archc import ir
from archc.errors import ArchcError, Loc
from archc.weights import Context, Declaration, Files, Layer, Tensor, canonical_shapes


def layer_name(path: str) -> str:
    return path.replace(".", "_")


def _layer(*names: tuple[str, str]):
    """A declaration whose tensors are the canonical ones, as they are, under Keras' ``(name, canonical)``
    names in the layer's ``get_weights()`` order (absent canonical tensors, e.g. no bias, are left out)."""

    def declare(node: ir.Node, ctx: Context) -> Layer:
        shapes = canonical_shapes(node, ctx)
        return Layer(layer_name(node.path), tuple(Tensor(k, shapes[c], c) for k, c in names if c in shapes))

    return declare


def _dwconv(node: ir.Conv, ctx: Context) -> Layer:
    """DepthwiseConv1D / 2D: [kernel (*k, C, m), bias]; in 3-D (no DepthwiseConv3D) a Conv3D with a group per
    channel: [kernel (kd, kh, kw, 1, C * m), bias], output channel c * m + j from input c."""
    if len(node.kernel) != 3:
        return _layer(("kernel", "kernel"), ("bias", "bias"))(node, ctx)
    shapes = canonical_shapes(node, ctx)
    k, c = node.kernel, node.in_channels
    kernel = Tensor(
        "kernel",
        (*k, 1, node.out_channels),
        "kernel",
        to_canonical=lambda a: a.reshape(*k, c, node.out_channels // c),
        from_canonical=lambda a: a.reshape(*k, 1, node.out_channels),
    )
    bias = [Tensor("bias", shapes["bias"], "bias")] if "bias" in shapes else []
    return Layer(layer_name(node.path), (kernel, *bias))


def read_weights_file(model: ir.Model, path: str) -> dict[str, list]:
    """A ``.weights.h5`` of the generated Keras model (``model.save_weights``), loaded by Keras into it:
    {layer name: [weights]}."""
    from archc.convert import keras_model_weights, load_generated

    kmodel = load_generated(model, "keras").build_model()
    try:
        kmodel.load_weights(path)
    except Exception as exc:
        raise ArchcError(f"Keras weights do not fit spec '{model.name}': {exc}", Loc(path, 1, 1)) from None
    return keras_model_weights(kmodel)


def write_weights_file(model: ir.Model, layers: dict[str, list], path: str) -> int:
    """The generated Keras model given ``layers``, saved with ``save_weights``."""
    from archc.convert import load_generated, set_keras_weights

    kmodel = load_generated(model, "keras").build_model()
    set_keras_weights(kmodel, layers)
    kmodel.save_weights(path)
    return len(layers)


LAYOUT = Declaration(
    backend="keras",
    tables={
        # Conv1D / 2D / 3D: [kernel (*k, in / groups, out), bias]
        "conv": _layer(("kernel", "kernel"), ("bias", "bias")),
        # DepthwiseConv2D: [kernel (kh, kw, C, m), bias]; 3-D: a grouped Conv3D
        "dwconv": _dwconv,
        # BatchNormalization: [gamma, beta, moving_mean, moving_variance]; no gamma with scale=False
        "bn": _layer(("gamma", "gamma"), ("beta", "beta"), ("moving_mean", "mean"), ("moving_variance", "var")),
        # Dense: [kernel (in, out), bias]
        "dense": _layer(("kernel", "kernel"), ("bias", "bias")),
        # LayerNormalization, GroupNormalization: [gamma, beta]
        "layernorm": _layer(("gamma", "gamma"), ("beta", "beta")),
        "groupnorm": _layer(("gamma", "gamma"), ("beta", "beta")),
        # the LayerScale helper layer: [scale (C,)]
        "layer_scale": _layer(("scale", "scale")),
        # Conv1DTranspose / 2D / 3D: [kernel (*k, out, in), bias] (then a Cropping layer without weights)
        "conv_transpose": _layer(("kernel", "kernel"), ("bias", "bias")),
    },
    grouped=True,
    noun="Keras weight set",
    files=Files((".weights.h5",), read_weights_file, write_weights_file, "Keras layers"),
)
