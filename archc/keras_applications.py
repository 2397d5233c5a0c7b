"""keras.applications checkpoints in: ``archc convert-weights SPEC SRC DST --from keras.applications``.

A keras.applications weights file does not name its tensors the way the generated Keras model does, and one
of Keras 3's own ``save_weights`` files (``.weights.h5``) does not name them at all: it keys each layer by
its class and position (``layers/conv2d_17/vars/0``). The published ImageNet files are the legacy Keras 2
``.h5`` layout, matched by layer order. So the file is not parsed here: keras.applications' own model is
built (``weights=None``, with the builder and arguments the family's mapping names, at the spec's input
size) and Keras loads the file into it, in either format; a file that does not load (another model, another
width) is refused with Keras' reason. Every weight of that model is checked to have been loaded (they are
set to NaN first). Then its layers, by their names, are mapped onto the generated Keras model's layers by
the rules of the spec's family (``archc/stdlib/keras_applications/<family>.yaml``, :mod:`archc.mapping`),
tensor by tensor in ``get_weights()`` order; a 1x1 ``Conv2D`` kernel on pooled features and a ``Dense``
kernel are the same numbers (MobileNet's ``conv_preds``) and are reshaped.

A headless target (``--set include_top=false``) takes a full checkpoint: the layers only the full model
maps (the classifier) are skipped and reported. Layers the mapping lists under ``ignore`` (preprocessing,
EfficientNet's ``Normalization``) are skipped and reported with their values.

keras (and numpy) are imported only when a conversion runs.
"""

from __future__ import annotations

import importlib
import re

from . import ir
from . import weights as W
from .errors import ArchcError, Loc
from .mapping import BY_ORDER, Mapping, mapping_for

SOURCE = "keras.applications"
_SUFFIX = re.compile(r"^(.*?)(?:_(\d+))?$")


def _param(model: ir.Model, name: str, where: str):
    params = dict(model.params)
    if name not in params:
        raise ArchcError(f"{where}: spec '{model.name}' has no param '{name}'", Loc(model.spec_file, 1, 1))
    return _thaw(params[name])


def _thaw(v):
    return [_thaw(x) for x in v] if isinstance(v, tuple) else v


def builder_call(mapping: Mapping, model: ir.Model, include_top: bool, classes: int | None = None):
    """``(callable, kwargs, text)``: how keras.applications builds the model ``mapping`` maps ``model`` from."""
    if mapping.builder is None:
        raise ArchcError(f"{mapping.file}: no 'builder:' (which keras.applications model)", Loc(mapping.file, 1, 1))
    call = mapping.builder["call"]
    if isinstance(call, dict):  # one family, several keras.applications builders (VGG16 / VGG19)
        if model.name not in call:
            raise ArchcError(
                f"{mapping.file}: no keras.applications model for spec '{model.name}' "
                f"(it has {', '.join(f'{c} for {s}' for s, c in call.items())})",
                Loc(model.spec_file, 1, 1),
            )
        call = call[model.name]
    if not call.startswith("keras.") or not all(p.isidentifier() for p in call.split(".")):
        raise ArchcError(f"{mapping.file}: builder '{call}' is not a keras.* function", Loc(mapping.file, 1, 1))
    kwargs = {}
    for arg, v in mapping.builder["args"].items():
        kwargs[arg] = _param(model, v[1:], mapping.file) if isinstance(v, str) and v.startswith("$") else v
    kwargs.update(include_top=include_top, weights=None, input_shape=tuple(model.input_shape))
    if include_top:
        kwargs["classifier_activation"] = None
        if classes is not None:
            kwargs["classes"] = classes
    else:
        kwargs.pop("classes", None)
    module, _, fn = call.rpartition(".")
    try:
        f = getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as exc:
        raise ArchcError(f"{mapping.file}: cannot import {call}: {exc}", Loc(mapping.file, 1, 1)) from None
    text = f"{call}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    return f, kwargs, text


def leaf_layers(model) -> list:
    """Every layer of a Keras model, nested models opened (ConvNeXt's Sequential stem), in order."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


def load_reference(mapping: Mapping, model: ir.Model, src: str, classes: int | None):
    """keras.applications' model with ``src`` loaded: ``(keras model, how it was built)``. Tried with the top
    (the spec's classes, then ImageNet's 1000) and without; refused if ``src`` loads into none."""
    import warnings

    import numpy as np

    attempts = [(True, classes)] + ([(True, 1000)] if classes not in (None, 1000) else []) + [(False, None)]
    first_error = None
    for include_top, n in attempts:
        f, kwargs, text = builder_call(mapping, model, include_top, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no ImageNet weights for this size": none are downloaded
            try:
                ref = f(**kwargs)
            except Exception as exc:  # keras refuses the arguments (a size below its minimum, ...)
                first_error = first_error or f"{text}: {exc}"
                continue
            floats = [v for v in ref.weights if np.issubdtype(np.dtype(str(v.dtype)), np.floating)]
            for v in floats:  # a value the file does not overwrite stays NaN: found below
                v.assign(np.full(tuple(v.shape), np.nan, dtype=str(v.dtype)))
            try:
                ref.load_weights(src)
            except Exception as exc:  # another model's file, a corrupt file: keras says why
                first_error = first_error or f"{text}: {' '.join(str(exc).split())[:600]}"
                continue
        unloaded = [v.path for v in floats if np.isnan(np.asarray(v.numpy(), dtype=np.float64)).any()]
        if unloaded:
            first_error = first_error or f"{text}: the file has no values for " + ", ".join(unloaded[:8])
            continue
        return ref, text
    raise ArchcError(
        f"not a keras.applications checkpoint of spec '{model.name}' ({mapping.file}): {first_error}",
        Loc(src, 1, 1),
    )


def _by_order_key(name: str) -> tuple[str, int]:
    m = _SUFFIX.match(name)
    return m.group(1), int(m.group(2)) if m.group(2) else 0


def _resolve(mapping: Mapping, declared: list[W.Layer], ref_names: list[str]) -> dict[str, str]:
    """Generated layer name -> keras.applications layer name (rules, then '#' names by order)."""
    try:
        names = mapping.names([layer.name for layer in declared])
    except ArchcError as exc:  # a spec of the family the mapping is not written for: say which ones it is
        raise ArchcError(
            f"{exc.message} (its keras.applications names are for specs {', '.join(mapping.specs) or 'none'})",
            exc.loc,
        ) from None
    pools: dict[str, list[str]] = {}
    for base in {v[: -len(BY_ORDER)] for v in names.values() if v.endswith(BY_ORDER)}:
        pools[base] = sorted((n for n in ref_names if _by_order_key(n)[0] == base), key=lambda n: _by_order_key(n)[1])
    out, used = {}, {b: 0 for b in pools}
    for gen, theirs in names.items():
        if theirs.endswith(BY_ORDER):
            base = theirs[: -len(BY_ORDER)]
            i = used[base]
            used[base] += 1
            theirs = pools[base][i] if i < len(pools[base]) else f"{base} #{i + 1}"
        out[gen] = theirs
    return out


def _ignored(mapping: Mapping, name: str) -> bool:
    for pat in mapping.ignore:
        if pat.endswith(BY_ORDER) and _by_order_key(name)[0] == pat[: -len(BY_ORDER)] or pat == name:
            return True
    return False


def _fit(array, shape: tuple):
    """``array`` as ``shape`` where only unit dimensions differ (a 1x1 conv kernel <-> a dense kernel)."""
    if tuple(array.shape) == shape:
        return array
    if [d for d in array.shape if d != 1] == [d for d in shape if d != 1]:
        return array.reshape(shape)
    return None


def from_keras_applications(model: ir.Model, src: str, full: ir.Model | None = None):
    """A keras.applications weights file -> ``({generated Keras layer: [arrays]}, notes)``; ``full``: the
    spec's model with its top when ``model`` is headless (its classifier layers are skipped, not refused)."""
    import numpy as np

    mapping = mapping_for(model, SOURCE)
    decl = W.layers(_keras_layout(), model)
    declared = [layer for _, layer in decl]
    classes = None
    if "classes" in dict((full or model).params):
        classes = _param(full or model, "classes", mapping.file)
    ref, built = load_reference(mapping, model, src, classes)
    ref_layers = {layer.name: layer for layer in leaf_layers(ref) if layer.weights}
    gen_to_ref = _resolve(mapping, declared, list(ref_layers))
    skipped_top: set[str] = set()
    if full is not None and full is not model:
        full_decl = [layer for _, layer in W.layers(_keras_layout(), full)]
        skipped_top = set(_resolve(mapping, full_decl, list(ref_layers)).values()) - set(gen_to_ref.values())
    missing, misshaped, out = [], [], {}
    for layer in declared:
        theirs = gen_to_ref[layer.name]
        ref_layer = ref_layers.get(theirs)
        if ref_layer is None:
            missing.append(theirs)
            continue
        arrays = [np.asarray(w) for w in ref_layer.get_weights()]
        if len(arrays) != len(layer.tensors):
            misshaped.append(
                f"{theirs} has {len(arrays)} tensors ({', '.join(str(a.shape) for a in arrays)}), "
                f"spec's {layer.name} needs {len(layer.tensors)}"
            )
            continue
        fitted = [_fit(a, t.shape) for a, t in zip(arrays, layer.tensors, strict=True)]
        bad = [
            f"{theirs}.{t.name} {a.shape} (spec needs {t.shape})"
            for a, t, f in zip(arrays, layer.tensors, fitted, strict=True)
            if f is None
        ]
        if bad:
            misshaped.extend(bad)
            continue
        out[layer.name] = fitted
    mapped = set(gen_to_ref.values())
    unexpected, skipped, ignored = [], [], []
    for name in ref_layers:
        if name in mapped:
            continue
        if name in skipped_top:
            skipped.append(name)
        elif _ignored(mapping, name):
            ignored.append(name)
        else:
            unexpected.append(name)
    problems = W.problem_lines(missing, unexpected, misshaped)
    if missing and "include_top=False" in built:
        problems.append(
            "the file has no classifier (keras.applications' include_top=False): convert into the "
            "spec without its top, --set include_top=false"
        )
    if problems:
        raise ArchcError(
            f"keras.applications checkpoint does not fit spec '{model.name}' ({model.spec_file}) "
            f"through {mapping.file}: " + "; ".join(problems),
            Loc(src, 1, 1),
        )
    notes = [f"read into {built}"]
    if skipped:
        notes.append("skipped, the classifier this headless model leaves out: " + ", ".join(skipped))
    for name in ignored:
        values = "; ".join(
            f"{v.name} = {np.array2string(np.asarray(v.numpy()).ravel(), precision=6, separator=', ')}"
            for v in ref_layers[name].weights
        )
        notes.append(f"skipped, preprocessing outside the network ({type(ref_layers[name]).__name__} {name}): {values}")
    if model.name not in mapping.specs:
        checked = ", ".join(mapping.specs) or "none"
        notes.append(
            f"note: {mapping.file} is checked for specs {checked}, not '{model.name}': the tensors fit by name and "
            "shape; the layout (padding, epsilon) must be keras.applications' for the same numbers"
        )
    return out, notes


def _keras_layout():
    from .backends import weight_layout

    return weight_layout("keras")
