"""Inference export for the generated PyTorch model: BatchNorm folded into the preceding convolution.

In eval mode ``bn(conv(x)) = conv'(x)`` with ``w' = w * g`` and ``b' = (b - mean) * g + beta`` where
``g = gamma / sqrt(var + eps)`` per output channel. Which BN follows which conv is read from the
IR (consecutive items of one sequence), where each sits in the module tree from
:mod:`archc.backends.torch.names`. torch is imported only when this runs.
"""

from __future__ import annotations

from . import ir


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

    from .backends.torch.names import module_paths

    paths = module_paths(model)
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


def export_folded(spec: str, src: str, dst: str, sets=()) -> str:
    """Load a state_dict into the spec's generated model, fold BN, save a TorchScript trace to ``dst``."""
    import torch

    from .convert import _atomic, _check_state, _read_torch, load_generated
    from .pipeline import compile_spec

    model = compile_spec(spec, sets)
    state = _read_torch(src)
    _check_state(model, {k: v.numpy() for k, v in state.items()}, src)
    net = load_generated(model, "torch").build_model()
    net.load_state_dict(state)
    fold_batchnorm(model, net)
    h, w, c = model.input_shape
    try:  # scripting keeps every input size working
        exported, how = torch.jit.script(net), "scripted: any input size"
    except Exception:  # noqa: BLE001 - TorchScript refuses some valid Python (super().forward, optional outputs)
        exported = torch.jit.trace(net, torch.zeros(1, c, h, w), check_trace=False)
        how = f"traced at {h}x{w}: run it at that input size only (rebuild with --set for another)"
    _atomic(dst, lambda p: torch.jit.save(exported, p))
    return f"wrote {dst}: {len(foldable_pairs(model))} batch norms folded into their convolutions ({how})"
