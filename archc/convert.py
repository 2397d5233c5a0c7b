"""Weight conversion between the generated models of two backends, composed through the IR.

"Train in PyTorch, deploy with Keras" (and back). Each backend declares, per weighted IR node kind, where its
tensors live and how each maps to the canonical layout of :mod:`archc.weights` (``archc/backends/<name>/weights.py``,
found through :func:`archc.backends.weight_layout`); :func:`convert` checks the weights against the source's
declaration, takes them to the canonical layout and from there to the destination's. For PyTorch and Keras:

* conv ``OIHW`` <-> Keras ``HWIO``; depthwise ``(C*m, 1, kh, kw)`` <-> ``(kh, kw, C, m)``;
* batch norm weight, bias, running mean / variance <-> gamma, beta, moving mean / variance;
* dense ``(out, in)`` <-> ``(in, out)``, and a dense layer fed by a flatten has its input
  dimension permuted from PyTorch's ``C, H, W`` order to Keras' ``H, W, C`` order;
* layer / group norm weight, bias <-> gamma, beta; layer scale ``(C, 1, 1)`` <-> ``(C,)``.

torchvision's checkpoints come in through :func:`from_torchvision`: their keys are renamed to the
generated model's by the rules of the model's family (``archc/stdlib/torchvision/<family>.yaml``,
:mod:`archc.mapping`), then go the same way as a generated model's state_dict. keras.applications' come in
through :mod:`archc.keras_applications` (``archc/stdlib/keras_applications/<family>.yaml``).

torch, keras and numpy are imported only when a conversion runs.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from . import ir
from . import weights as W
from .errors import ArchcError, Loc


def keras_layer_name(path: str) -> str:
    return path.replace(".", "_")


def weighted_leaves(model: ir.Model) -> list[ir.Node]:
    return W.weighted_leaves(model)


def layout(backend: str) -> W.Declaration:
    """The weight declaration of ``backend`` (through the backend registry)."""
    from .backends import weight_layout

    try:
        return weight_layout(backend)
    except KeyError as exc:
        raise ArchcError(f"weight conversion: {exc.args[0]}", None) from None


def torch_shapes(model: ir.Model) -> dict[str, tuple]:
    """Every state_dict entry the generated PyTorch model has, with its shape."""
    return W.shapes(layout("torch"), model)


def _natural(key: str) -> list:
    """Sort key putting ``stack.2`` before ``stack.10`` (module paths in the order people read them)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key)]


def _fit_problems(
    expected: dict[str, tuple], state: dict, shown=lambda k: k, in_order: bool = False, unchecked=frozenset()
) -> list[str]:
    """What keeps ``state`` from fitting ``expected`` (key -> shape): missing, unexpected, mis-shaped keys,
    each named by ``shown(key)``; sorted by name, or with ``in_order`` in the model's order (unexpected ones
    in the checkpoint's). The shapes of ``unchecked`` keys (counters) are not compared."""
    if in_order:
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        common = [k for k in expected if k in state]
    else:
        missing = sorted(set(expected) - set(state), key=_natural)
        unexpected = sorted(set(state) - set(expected), key=_natural)
        common = sorted(set(expected) & set(state), key=_natural)
    misshaped = [
        f"{shown(k)} {tuple(state[k].shape)} (spec needs {expected[k]})"
        for k in common
        if tuple(state[k].shape) != expected[k] and k not in unchecked
    ]
    return W.problem_lines([shown(k) for k in missing], [shown(k) for k in unexpected], misshaped)


def check(model: ir.Model, decl: W.Declaration, weights, src: str) -> None:
    """Refuse ``weights`` (held ``decl``'s way) that do not fit ``model``: missing, unexpected, mis-shaped
    tensors, named ``<layer>.<tensor>``."""
    flat = W.flat_keys(decl, model, weights)
    problems = _fit_problems(W.shapes(decl, model), flat, unchecked=W.counters(decl, model))
    if problems:
        raise ArchcError(
            f"{decl.noun} does not fit spec '{model.name}' ({model.spec_file}): " + "; ".join(problems),
            Loc(src, 1, 1),
        )


def _numpy(weights, grouped: bool):
    import numpy as np

    def arr(v):
        return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)

    if grouped:
        return {k: [arr(v) for v in vs] for k, vs in weights.items()}
    return {k: arr(v) for k, v in weights.items()}


def convert(
    model: ir.Model, tensors, src: str = "torch", dst: str = "keras", origin: str | None = None, dtype: str = "float32"
):
    """``tensors``, the weights of ``model``'s generated ``src`` model held that backend's way (PyTorch: a
    state_dict; Keras: {layer name: [weights]}; arrays of any framework), -> the same weights held the ``dst``
    backend's way, numpy arrays of ``dtype`` (float64 for models trained or compared in float64). Refused (naming
    ``origin``) if they do not fit ``src``'s declaration."""
    s, d = layout(src), layout(dst)
    arrays = _numpy(tensors, s.grouped)
    check(model, s, arrays, origin or f"<{src} weights>")
    return W.from_canonical(d, model, W.to_canonical(s, model, arrays), dtype)


def torch_to_keras(model: ir.Model, state: dict, dtype: str = "float32") -> dict[str, list]:
    """PyTorch state_dict (name -> array-like) -> {Keras layer name: [weights in Keras order]}."""
    return convert(model, state, "torch", "keras", "<state_dict>", dtype)


def keras_to_torch(model: ir.Model, layers: dict[str, list], dtype: str = "float32") -> dict:
    """{Keras layer name: [weights]} -> PyTorch state_dict of numpy arrays (plus num_batches_tracked)."""
    return convert(model, layers, "keras", "torch", "<keras weights>", dtype)


def load_generated(model: ir.Model, backend: str):
    """Emit ``model`` with ``backend`` into a temporary module and import it."""
    import importlib.util

    from .backends import get_backend

    text = get_backend(backend).emit(model)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"archc_{backend}_{model.name}.py"
        path.write_text(text, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def keras_model_weights(kmodel) -> dict[str, list]:
    return {
        layer.name: [w.numpy() if hasattr(w, "numpy") else w for w in layer.get_weights()] for layer in kmodel.layers
    }


def set_keras_weights(kmodel, layers: dict[str, list]) -> None:
    by_name = {layer.name: layer for layer in kmodel.layers}
    for name, ws in layers.items():
        if name not in by_name:
            raise ArchcError(f"generated Keras model has no layer '{name}'", None)
        by_name[name].set_weights(ws)


def _atomic(dst: str, write) -> None:
    d = os.path.dirname(os.path.abspath(dst))
    os.makedirs(d, exist_ok=True)
    suffix = ".weights.h5" if dst.endswith(".weights.h5") else Path(dst).suffix
    fd, tmp = tempfile.mkstemp(prefix=".archc-", suffix=suffix, dir=d)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def from_torchvision(model: ir.Model, state: dict, src: str, full: ir.Model | None = None, notes=None) -> dict:
    """A torchvision state_dict -> the generated PyTorch model's state_dict (same tensors, archc's keys),
    through the mapping of the model's family (:mod:`archc.mapping`). A checkpoint that does not fit is
    refused naming its tensors in torchvision's names. ``full``: the spec's model with its top, when ``model``
    is headless: the checkpoint's tensors only ``full`` has (the classifier) are skipped, listed in ``notes``."""
    from .mapping import mapping_for

    mapping = mapping_for(model, "torchvision")
    shapes = torch_shapes(model)
    names = mapping.names(shapes)  # archc key -> torchvision key
    renamed = mapping.checkpoint_names(state)  # checkpoint key -> current torchvision spelling
    if full is not None and full is not model:
        top = set(mapping.names(torch_shapes(full)).values()) - set(names.values())
        dropped = [k for k, tv in renamed.items() if tv in top]
        renamed = {k: tv for k, tv in renamed.items() if tv not in top}
        if dropped and notes is not None:
            notes.append("skipped, the classifier this headless model leaves out: " + ", ".join(dropped))
    by_tv: dict = {}
    original: dict[str, str] = {}
    for key, tv in renamed.items():
        if tv in by_tv:
            raise ArchcError(f"checkpoint has both '{original[tv]}' and '{key}' for '{tv}'", Loc(src, 1, 1))
        by_tv[tv], original[tv] = state[key], key
    # num_batches_tracked is only a counter (torchvision's older files have none): a missing one starts at 0
    counted = W.counters(layout("torch"), model)
    counters = [names[k] for k in shapes if k in counted]
    for tv in counters:
        if tv not in by_tv:
            by_tv[tv] = _zero_count(state)
    expected = {names[k]: s for k, s in shapes.items()}
    problems = _fit_problems(
        expected, by_tv, shown=lambda tv: original.get(tv, tv), in_order=True, unchecked=set(counters)
    )
    if problems:
        raise ArchcError(
            f"torchvision checkpoint does not fit spec '{model.name}' ({model.spec_file}) "
            f"through {mapping.file}: " + "; ".join(problems),
            Loc(src, 1, 1),
        )
    return {k: by_tv[tv] for k, tv in names.items()}


def _zero_count(state: dict):
    """A zero ``num_batches_tracked`` of the checkpoint's array type (torch tensor or numpy)."""
    for v in state.values():
        if type(v).__module__.startswith("torch"):
            import torch

            return torch.zeros((), dtype=torch.int64)
        break
    import numpy as np

    return np.zeros((), dtype=np.int64)


def full_model(spec: str, sets, model: ir.Model) -> ir.Model:
    """``model`` with its top (``include_top=true``) where it was built without: a full checkpoint's classifier
    tensors are then known, and skipped rather than refused. Its outputs are the spec's own (a headless model's
    ``outputs=`` taps name no weights, and the full model's last item must be one of its outputs)."""
    from .loader import without_builtin_sets
    from .pipeline import compile_spec

    if not model.top_removed:
        return model
    return compile_spec(spec, [s for s in without_builtin_sets(sets) if not s.strip().startswith("outputs=")])


def _drop_top(model: ir.Model, full: ir.Model, state: dict, notes: list[str], backend: str = "torch") -> dict:
    """A generated full model's flat weights (a state_dict) for a headless ``model``: the tensors only ``full``
    has go."""
    if full is model:
        return state
    top = set(W.shapes(layout(backend), full)) - set(W.shapes(layout(backend), model))
    dropped = [k for k in state if k in top]
    if dropped:
        notes.append("skipped, the classifier this headless model leaves out: " + ", ".join(dropped))
    return {k: v for k, v in state.items() if k not in top}


def earlier_names(spec: str, sets, model: ir.Model) -> dict[str, str]:
    """The layers whose names an earlier archc spelled otherwise: {earlier IR path: ``model``'s}. In archc 0.1 a
    level of one item added a level of its own (``layer1.rest.0.block.conv1``, ``mixed.branch1.branch1x1``,
    ``aux1.head.fc1``), which is now that item (``layer1.rest.0.conv1``, ``mixed.branch1x1``, ``aux1.fc1``,
    :data:`archc.lower.ONE_ITEM_LEVELS`). Found by lowering the spec the earlier way: the same layers in the
    same order, only their paths differ."""
    from .lower import ONE_ITEM_LEVELS
    from .pipeline import compile_spec

    token = ONE_ITEM_LEVELS.set(False)
    try:
        old = compile_spec(spec, list(sets))
    finally:
        ONE_ITEM_LEVELS.reset(token)
    new_leaves, old_leaves = weighted_leaves(model), weighted_leaves(old)
    if [n.kind for n in new_leaves] != [n.kind for n in old_leaves]:  # (cannot be: the same network)
        return {}
    return {o.path: n.path for o, n in zip(old_leaves, new_leaves) if o.path != n.path}


def _earlier_names(spec: str, sets, model: ir.Model, state: dict, notes: list[str]) -> tuple[dict, bool]:
    """A PyTorch state_dict of the generated model of an earlier archc (``layer1.rest.0.block.conv1.weight``)
    renamed to this one's (``layer1.rest.0.conv1.weight``); (state, whether it was renamed). A state_dict that
    has this model's names is returned as it is."""
    current = {n.path for n in weighted_leaves(model)}
    layers = {k.rpartition(".")[0] for k in state}
    if layers <= current:
        return state, False
    earlier = earlier_names(spec, sets, model)
    renames = {p: earlier[p] for p in sorted(layers) if p in earlier and p not in current}
    if not renames:
        return state, False
    out = {}
    for k, v in state.items():
        layer, _, tensor = k.rpartition(".")
        out[f"{renames[layer]}.{tensor}" if layer in renames else k] = v
    first = next(p for p in earlier if p in renames)  # (the model's first renamed layer, as an example)
    notes.append(
        f"renamed {len(renames)} layers from an earlier archc's names (archc 0.1; a level of one item is now that "
        f"item: {first} -> {renames[first]})"
    )
    return out, True


def _said(line: str, notes: list[str]) -> str:
    return "\n".join([line, *notes])


def _checkpoint_files() -> dict[str, W.Files]:
    """Backend name -> its checkpoint files (the backends whose weight declarations say how they keep them)."""
    from .backends import list_backends, weight_layout

    out = {}
    for name in list_backends():
        try:
            files = weight_layout(name).files
        except KeyError:  # a backend without weight declarations
            continue
        if files is not None:
            out[name] = files
    return out


def _file_backend(path: str) -> str | None:
    """The backend whose checkpoint files ``path`` is named as (its declaration's ``files.extensions``)."""
    return next((name for name, f in _checkpoint_files().items() if path.endswith(f.extensions)), None)


def _formats() -> str:
    return ", ".join(f"{'/'.join(f.extensions)} ({name})" for name, f in _checkpoint_files().items())


def convert_weights(spec: str, src: str, dst: str, sets=(), source: str = "archc") -> str:
    """Convert ``src``, a checkpoint of one generated model, into ``dst``, the other's, for ``spec``: each backend
    declares its files (``archc.weights.Files``: .pt/.pth for PyTorch, .weights.h5 for Keras).

    ``source="torchvision"``: ``src`` is a torchvision state_dict (.pt/.pth); ``source="keras.applications"``:
    ``src`` is a keras.applications weights file (``.weights.h5`` or the legacy ``.h5``). Either way ``dst``
    is any backend's file. A headless spec (``include_top=false``) takes a full checkpoint: the classifier's
    tensors are skipped and reported."""
    from .pipeline import compile_spec

    sets = list(sets)
    model = compile_spec(spec, sets)
    if not os.path.isfile(src):
        raise ArchcError("no such file", Loc(src, 1, 1))
    notes: list[str] = []
    dst_backend = _file_backend(dst)
    if source == "torchvision":
        if not src.endswith((".pt", ".pth")):
            raise ArchcError("--from torchvision reads a .pt/.pth state_dict", Loc(src, 1, 1))
        src_backend, origin = "torch", f"torchvision's {src}"
        read = layout("torch").files.read
        weights = from_torchvision(model, read(model, src), src, full_model(spec, sets, model), notes)
    elif source == "keras.applications":
        if not src.endswith(".h5"):
            raise ArchcError("--from keras.applications reads a .weights.h5 or legacy .h5 weights file", Loc(src, 1, 1))
        from .keras_applications import from_keras_applications

        src_backend, origin = "keras", f"keras.applications' {src}"
        weights, notes = from_keras_applications(model, src, full_model(spec, sets, model))
    elif source == "archc":
        src_backend, origin = _file_backend(src), src
        if src_backend is None or dst_backend is None:
            raise ArchcError(f"convert one framework's checkpoint into another's: {_formats()}", Loc(src, 1, 1))
        weights = layout(src_backend).files.read(model, src)
        renamed = False
        if not layout(src_backend).grouped:  # names of an earlier archc renamed; a full model's top goes (headless)
            weights, renamed = _earlier_names(spec, sets, model, weights, notes)
            weights = _drop_top(model, full_model(spec, sets, model), weights, notes, src_backend)
        if src_backend == dst_backend and not renamed:
            raise ArchcError(
                f"convert one framework's checkpoint into another's: {_formats()} (SRC and DST of one framework: "
                "only to rename a PyTorch checkpoint of an earlier archc's names, and SRC has this model's)",
                Loc(src, 1, 1),
            )
    else:
        raise ArchcError(f"unknown checkpoint source '{source}' (archc, torchvision or keras.applications)", None)
    if dst_backend is None:
        raise ArchcError(f"--from {source}: DST must be one of {_formats()}", Loc(dst, 1, 1))
    if src_backend == dst_backend:  # renamed only (torchvision's into the generated PyTorch model): checked as it is
        check(model, layout(dst_backend), _numpy(weights, layout(dst_backend).grouped), src)
        out = weights
    else:
        out = convert(model, weights, src_backend, dst_backend, src)
    files = layout(dst_backend).files
    written = []
    _atomic(dst, lambda p: written.append(files.write(model, out, p)))
    return _said(f"wrote {dst}: {written[0]} {files.what} from {origin}", notes)
