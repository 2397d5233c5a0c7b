"""Where each IR leaf lives in the generated PyTorch module tree.

``module_paths(model)`` maps the IR path of every leaf with weights (conv, bn, dense) to the
dotted module path in ``build_model()``'s ``state_dict`` (``"features.0"`` style), following
the same structure rules as :mod:`backends.torch.emitter`:

* a class body (model or block) holds one attribute per item; a single concat/add there is
  inlined (its branches become attributes), a dense_connect is a ``ModuleList`` attribute;
* a nested sequence is its item alone, or an ``nn.Sequential`` (indices); in a block class an
  item with an ``if`` stays in place (``nn.Identity`` when off), at model level it is left out;
* concat/add/dense_connect elsewhere are ``ModuleList`` helpers, repeats ``nn.Sequential``;
* a conv with static asymmetric padding is ``nn.Sequential(nn.ZeroPad2d, conv)`` (index 1).

Tests build every spec's model and check that these paths are exactly its parameters.
"""

from __future__ import annotations

from archc import ir

from ..common import pair_instances


def module_paths(model: ir.Model) -> dict[str, str]:
    templates = {}
    for tid, nodes in pair_instances(model).items():
        for n in nodes:
            templates[id(n)] = tid
    tnodes = {}

    def index_templates(t: ir.TNode):
        tnodes[id(t)] = t
        for c in t.children:
            index_templates(c)

    index_templates(model.network)
    for h in model.heads:
        index_templates(h.template)
    for b in model.blocks:
        index_templates(b.body)

    out: dict[str, str] = {}

    def tmpl(n: ir.Node) -> ir.TNode:
        return tnodes[templates[id(n)]]

    def join(p: str, q) -> str:
        return f"{p}.{q}" if p else str(q)

    def class_body(seq: ir.Seq, prefix: str, top: bool) -> None:
        t = tmpl(seq)
        merges = [c for c in t.children if c.kind in ("concat", "add")]
        names = {c.name for c in t.children}
        for n in seq.children:
            tn = tmpl(n)
            cond = None if top else tn.cond
            if (
                tn.kind in ("concat", "add")
                and cond is None
                and len(merges) == 1
                and not ({b.name for b in tn.children} & (names - {tn.name}))
            ):
                for br in n.branches:
                    seq_module(br, join(prefix, br.name), top)
            elif tn.kind == "dense_connect" and cond is None:
                for i, layer in enumerate(n.layers):
                    seq_module(layer, join(join(prefix, n.name), i), top)
            else:
                module(n, join(prefix, n.name), top)

    def seq_module(seq: ir.Seq, prefix: str, top: bool) -> None:
        t = tmpl(seq)
        if top:
            items = [(i, c) for i, c in enumerate(seq.children)]
            count = len(seq.children)
        else:
            pos = {c.name: i for i, c in enumerate(t.children)}
            items = [(pos[c.name], c) for c in seq.children]
            count = len(t.children)
        for i, c in items:
            module(c, prefix if count == 1 else join(prefix, i), top)

    def module(n: ir.Node, prefix: str, top: bool) -> None:
        if isinstance(n, ir.Conv):
            asym = not n.same and (n.padding[0] != n.padding[1] or n.padding[2] != n.padding[3])
            out[n.path] = join(prefix, 1) if asym else prefix
        elif isinstance(n, (ir.BatchNorm, ir.Dense)):
            out[n.path] = prefix
        elif isinstance(n, ir.Call):
            class_body(n.body, prefix, top=False)
        elif isinstance(n, ir.Seq):
            seq_module(n, prefix, top)
        elif isinstance(n, ir.Merge):
            for j, br in enumerate(n.branches):
                seq_module(br, join(prefix, j), top)
        elif isinstance(n, ir.DenseConnect):
            for i, layer in enumerate(n.layers):
                seq_module(layer, join(prefix, i), top)
        elif isinstance(n, ir.Repeat):
            for i, it in enumerate(n.iterations):
                seq_module(it, join(prefix, i), top)

    class_body(model.body, "", top=True)
    for h in model.heads:
        seq_module(h.body, h.name, top=True)
    return out
