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


def _check_state(model: ir.Model, state: dict, src: str) -> None:
    check(model, layout("torch"), state, src)


def _numpy(weights, grouped: bool):
    import numpy as np

    def arr(v):
        return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)

    if grouped:
        return {k: [arr(v) for v in vs] for k, vs in weights.items()}
    return {k: arr(v) for k, v in weights.items()}


def convert(model: ir.Model, tensors, src: str = "torch", dst: str = "keras", origin: str | None = None):
    """``tensors``, the weights of ``model``'s generated ``src`` model held that backend's way (PyTorch: a
    state_dict; Keras: {layer name: [weights]}; arrays of any framework), -> the same weights held the ``dst``
    backend's way, numpy arrays. Refused (naming ``origin``) if they do not fit ``src``'s declaration."""
    s, d = layout(src), layout(dst)
    arrays = _numpy(tensors, s.grouped)
    check(model, s, arrays, origin or f"<{src} weights>")
    return W.from_canonical(d, model, W.to_canonical(s, model, arrays))


def torch_to_keras(model: ir.Model, state: dict) -> dict[str, list]:
    """PyTorch state_dict (name -> array-like) -> {Keras layer name: [weights in Keras order]}."""
    return convert(model, state, "torch", "keras", "<state_dict>")


def keras_to_torch(model: ir.Model, layers: dict[str, list]) -> dict:
    """{Keras layer name: [weights]} -> PyTorch state_dict of numpy arrays (plus num_batches_tracked)."""
    return convert(model, layers, "keras", "torch", "<keras weights>")


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


def _read_torch(src: str) -> dict:
    import torch

    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say so, no traceback
        raise ArchcError(f"cannot read PyTorch checkpoint: {exc}", Loc(src, 1, 1)) from None
    for wrapper in ("state_dict", "model"):  # a training checkpoint (torchvision's references save "model")
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ArchcError("not a state_dict (a mapping of names to tensors)", Loc(src, 1, 1))
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


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
    tensors are then known, and skipped rather than refused."""
    from .loader import without_builtin_sets
    from .pipeline import compile_spec

    if not model.top_removed:
        return model
    return compile_spec(spec, without_builtin_sets(sets))


def _drop_top(model: ir.Model, full: ir.Model, state: dict, notes: list[str]) -> dict:
    """A generated full model's state_dict for a headless ``model``: the tensors only ``full`` has go."""
    if full is model:
        return state
    top = set(torch_shapes(full)) - set(torch_shapes(model))
    dropped = [k for k in state if k in top]
    if dropped:
        notes.append("skipped, the classifier this headless model leaves out: " + ", ".join(dropped))
    return {k: v for k, v in state.items() if k not in top}


def _said(line: str, notes: list[str]) -> str:
    return "\n".join([line, *notes])


def convert_weights(spec: str, src: str, dst: str, sets=(), source: str = "archc") -> str:
    """Convert ``src`` (.pt/.pth state_dict or .weights.h5) to ``dst`` (the other format) for ``spec``.

    ``source="torchvision"``: ``src`` is a torchvision state_dict (.pt/.pth); ``source="keras.applications"``:
    ``src`` is a keras.applications weights file (``.weights.h5`` or the legacy ``.h5``). Either way ``dst``
    is a .pt/.pth for the generated PyTorch model or a .weights.h5 for the generated Keras model. A headless
    spec (``include_top=false``) takes a full checkpoint: the classifier's tensors are skipped and reported."""
    from .pipeline import compile_spec

    sets = list(sets)
    model = compile_spec(spec, sets)
    torch_ext = (".pt", ".pth")
    if not os.path.isfile(src):
        raise ArchcError("no such file", Loc(src, 1, 1))
    notes: list[str] = []
    if source in ("torchvision", "keras.applications"):
        if not (dst.endswith(torch_ext) or dst.endswith(".weights.h5")):
            raise ArchcError(f"--from {source}: DST must be .pt/.pth (PyTorch) or .weights.h5 (Keras)", Loc(dst, 1, 1))
    if source == "torchvision":
        if not src.endswith(torch_ext):
            raise ArchcError("--from torchvision reads a .pt/.pth state_dict", Loc(src, 1, 1))
        full = full_model(spec, sets, model)
        state = from_torchvision(model, _read_torch(src), src, full, notes)
        if dst.endswith(".weights.h5"):
            return _said(_write_keras(model, state, src, dst), notes)
        import torch

        tensors = {k: torch.as_tensor(v).contiguous() for k, v in state.items()}
        _check_state(model, tensors, src)
        _atomic(dst, lambda p: torch.save(tensors, p))
        return _said(
            f"wrote {dst}: {len(tensors)} tensors of the generated PyTorch model from torchvision's {src}", notes
        )
    if source == "keras.applications":
        if not src.endswith(".h5"):
            raise ArchcError("--from keras.applications reads a .weights.h5 or legacy .h5 weights file", Loc(src, 1, 1))
        from .keras_applications import from_keras_applications

        layers, notes = from_keras_applications(model, src, full_model(spec, sets, model))
        if dst.endswith(".weights.h5"):
            kmodel = load_generated(model, "keras").build_model()
            set_keras_weights(kmodel, layers)
            _atomic(dst, kmodel.save_weights)
            return _said(f"wrote {dst}: {len(layers)} Keras layers from keras.applications' {src}", notes)
        import torch

        state = convert(model, layers, "keras", "torch", src)
        tensors = {k: torch.as_tensor(v).contiguous() for k, v in state.items()}
        _atomic(dst, lambda p: torch.save(tensors, p))
        return _said(
            f"wrote {dst}: {len(tensors)} tensors of the generated PyTorch model from keras.applications' {src}", notes
        )
    if source != "archc":
        raise ArchcError(f"unknown checkpoint source '{source}' (archc, torchvision or keras.applications)", None)
    if src.endswith(torch_ext) and dst.endswith(".weights.h5"):
        state = _drop_top(model, full_model(spec, sets, model), _read_torch(src), notes)
        return _said(_write_keras(model, state, src, dst), notes)
    if src.endswith(".weights.h5") and dst.endswith(torch_ext):
        import torch

        kmodel = load_generated(model, "keras").build_model()
        try:
            kmodel.load_weights(src)
        except Exception as exc:
            raise ArchcError(f"Keras weights do not fit spec '{model.name}': {exc}", Loc(src, 1, 1)) from None
        state = keras_to_torch(model, keras_model_weights(kmodel))
        tensors = {k: torch.from_numpy(v) for k, v in state.items()}
        _atomic(dst, lambda p: torch.save(tensors, p))
        return f"wrote {dst}: {len(tensors)} tensors from {src}"
    raise ArchcError("convert .pt/.pth -> .weights.h5 or .weights.h5 -> .pt/.pth", Loc(src, 1, 1))


def _write_keras(model: ir.Model, state: dict, src: str, dst: str) -> str:
    layers = torch_to_keras_checked(model, state, src)
    kmodel = load_generated(model, "keras").build_model()
    set_keras_weights(kmodel, layers)
    _atomic(dst, kmodel.save_weights)
    return f"wrote {dst}: {len(layers)} Keras layers from {src}"


def torch_to_keras_checked(model: ir.Model, state: dict, src: str) -> dict[str, list]:
    import numpy as np

    arrays = {k: np.asarray(v.detach().cpu().numpy()) for k, v in state.items()}
    _check_state(model, arrays, src)
    return torch_to_keras(model, arrays)
