"""Where each IR leaf lives in the generated PyTorch module tree.

The emitter (:mod:`backends.torch.emitter`) builds the module tree after the IR's names, so the
module path of every leaf with weights (conv, bn, dense) is its IR path, at every level:
``layer1.rest.0.block.conv1`` (class bodies hold one attribute per item, nested levels are
``nn.Sequential`` of ``OrderedDict`` s, merge branches and residual ``body`` / ``shortcut`` are
named children, loops are indices). Tests build every spec's model and check that these paths
are exactly its parameters.
"""

from __future__ import annotations

from archc import ir, ops


def module_paths(model: ir.Model) -> dict[str, str]:
    """IR path of every weighted leaf -> its module path in ``build_model()``'s ``state_dict``."""
    out: dict[str, str] = {}
    for root in [model.body] + [h.body for h in model.heads]:
        for n in ir.walk(root):
            if isinstance(n, (ir.Conv, ir.BatchNorm, ir.Dense)) or (
                isinstance(n, ir.Op) and ops.get(n.op).params(n)[0]
            ):
                out[n.path] = n.path
    return out
