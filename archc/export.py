"""Inference export for the generated PyTorch model: BatchNorm folded into the preceding convolution,
written as a ``torch.export`` program (``.pt2``) with dynamic batch and spatial sizes.

In eval mode ``bn(conv(x)) = conv'(x)`` with ``w' = w * g`` and ``b' = (b - mean) * g + beta`` where
``g = gamma / sqrt(var + eps)`` per output channel. Which BN follows which conv is read from the
IR (consecutive items of one sequence), where each sits in the module tree from the torch backend's
weight declaration (:func:`archc.backends.weight_layout`, :mod:`archc.weights`). torch is imported only when this runs.
"""

from __future__ import annotations

from . import ir
from .errors import ArchcError, Loc


def foldable_pairs(model: ir.Model) -> list[tuple[ir.Conv, ir.BatchNorm]]:
    """(conv, bn) pairs where the BN directly follows the conv in one sequence."""
    pairs = []
    for root in [model.body] + [h.body for h in model.heads]:
        for node in ir.walk(root):
            if isinstance(node, ir.Seq):
                for a, b in zip(node.children, node.children[1:]):
                    if isinstance(a, ir.Conv) and isinstance(b, ir.BatchNorm) and b.channels == a.out_channels:
                        pairs.append((a, b))
    return pairs


def fold_batchnorm(model: ir.Model, net):
    """Fold every BN that follows a conv into it (in place, eval mode); returns ``net``."""
    import torch
    from torch import nn

    from .convert import layout
    from .weights import layer_names

    paths = layer_names(layout("torch"), model)
    net.eval()
    with torch.no_grad():
        for conv_node, bn_node in foldable_pairs(model):
            conv = net.get_submodule(paths[conv_node.path])
            parent_path, _, attr = paths[bn_node.path].rpartition(".")
            bn = net.get_submodule(paths[bn_node.path])
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            setattr(net.get_submodule(parent_path) if parent_path else net, attr, nn.Identity())
    return net


FORMATS = ("export", "torchscript")
TOLERANCE = 1e-5  # relative max error allowed between the exported program and the unfolded model


def _dims(program) -> tuple[list, dict]:
    """The exported input's dimensions (an int where the export fixed it, a symbol where it is dynamic)
    and each symbol's smallest allowed value."""
    (x,) = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    shape = list(x.meta["val"].shape)
    lower = {}
    for d in shape:
        expr = getattr(getattr(d, "node", None), "expr", None)
        if expr is not None and expr in program.range_constraints:
            lower[str(d)] = int(program.range_constraints[expr].lower)
    return shape, lower


def fixes_spatial_size(model: ir.Model) -> bool:
    """Whether the main network only runs at its spec's input size: a flatten that does not follow a global
    pool feeds a dense layer a number of features that depends on the height and width."""
    for node in ir.walk(model.body):
        if isinstance(node, ir.Seq):
            for prev, child in zip([None, *node.children], node.children):
                if isinstance(child, ir.Flatten) and not isinstance(prev, ir.GlobalPool):
                    return True
    return False


def export_program(net, example, spatial: bool = True, fixed: bool = False):
    """``torch.export`` program of ``net`` (eval mode) with batch, height and width dynamic where the
    model allows: each is a ``Dim.AUTO``, which the export keeps symbolic unless the model's code
    fixes it (a flatten feeding a dense layer fixes height and width). Returns (program, description)."""
    import torch
    from torch.export import Dim

    space = Dim.AUTO if spatial else Dim.STATIC
    rank = example.dim() - 2
    dynamic = ({0: Dim.AUTO, **{2 + i: space for i in range(rank)}},)  # by position: whatever forward calls its input
    program = torch.export.export(net, (example,), dynamic_shapes=dynamic, strict=False)
    shape, lower = _dims(program)
    parts = []
    for label, d in zip(("batch", *ir.SPATIAL_NAMES[rank]), (shape[0], *shape[2:])):
        if isinstance(d, int):
            parts.append(f"{label} fixed at {d}")
        else:
            parts.append(f"{label} >= {lower.get(str(d), 1) if label != 'batch' else 1}")
    how = "torch.export program, dynamic " + ", ".join(parts)
    if fixed:
        how += " (--fixed-size)"
    elif any(isinstance(d, int) for d in shape[2:]):
        how += " (the model fixes the spatial size: a flatten feeds a dense layer; rebuild with --set size=...)"
    return program, how


def _relative_error(out, ref) -> float:
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def export_folded(spec: str, src: str, dst: str, sets=(), fmt: str = "export", fixed_size: bool = False) -> str:
    """Load a state_dict into the spec's generated model, fold BN, save an inference export to ``dst``.

    ``fmt="export"`` (default): a ``torch.export`` program (``.pt2``, load with ``torch.export.load(dst).module()``),
    verified after saving against the unfolded model; ``fixed_size`` keeps height and width static (a dynamic
    spatial size makes torch.export.load parse symbolic shapes: ~30 s for a DenseNet-121, ~3 s static).
    ``fmt="torchscript"``: the former TorchScript output (deprecated by PyTorch: ``torch.jit.save`` warns)."""
    import copy

    import torch

    from .convert import _atomic, check, layout, load_generated
    from .pipeline import compile_spec

    if fmt not in FORMATS:
        raise ArchcError(f"unknown export format '{fmt}' (available: {', '.join(FORMATS)})", None)
    model = compile_spec(spec, sets)
    state = layout("torch").files.read(model, src)
    check(model, layout("torch"), {k: v.numpy() for k, v in state.items()}, src)
    net = load_generated(model, "torch").build_model()
    net.load_state_dict(state)
    unfolded = copy.deepcopy(net).eval()
    fold_batchnorm(model, net)
    *spatial, c = model.input_shape
    size = "x".join(map(str, spatial))
    folded = f"{len(foldable_pairs(model))} batch norms folded into their convolutions"
    if fmt == "torchscript":
        try:  # scripting keeps every input size working
            exported, how = torch.jit.script(net), "TorchScript, scripted: any input size"
        except Exception:  # noqa: BLE001 - TorchScript refuses some valid Python (super().forward, optional outputs)
            exported = torch.jit.trace(net, torch.zeros(1, c, *spatial), check_trace=False)
            how = f"TorchScript, traced at {size}: run it at that input size only (rebuild with --set for another)"
        _atomic(dst, lambda p: torch.jit.save(exported, p))
        return f"wrote {dst}: {folded} ({how})"
    example = torch.randn(2, c, *spatial, generator=torch.Generator().manual_seed(0))
    try:
        program, how = export_program(
            net, example, spatial=not (fixed_size or fixes_spatial_size(model)), fixed=fixed_size
        )
    except Exception as exc:  # noqa: BLE001 - the exporter's own refusal, reported without a traceback
        raise ArchcError(
            f"torch.export cannot export '{model.name}': {type(exc).__name__}: {exc}", Loc(spec, 1, 1)
        ) from None
    with torch.no_grad():  # the program computes what the unfolded model computes; only then is it written
        err = _relative_error(program.module()(example), unfolded(example))
    if not err <= TOLERANCE:
        raise ArchcError(f"the export differs from the unfolded model (relative error {err:.2g})", Loc(spec, 1, 1))
    _atomic(dst, lambda p: torch.export.save(program, p))
    return f"wrote {dst}: {folded} ({how}; checked against the unfolded model: relative error {err:.1e})"
