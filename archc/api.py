"""archc from Python: compile a spec (a file or a zoo name) and get its analysis, its source, or a live model.

    >>> import archc
    >>> net = archc.create_model("resnet50", backend="torch", classes=10)   # a torch.nn.Module, no file written
    >>> archc.load("densenet121", growth_rate=12).trainable                  # the IR and its analysis, no framework

Params are the spec's ``params:`` (and the built-in ``include_top`` / ``pooling``), applied as ``--set`` would
apply them. The generated source is executed in a fresh module object that is never written to disk nor put in
``sys.modules``; torch or keras is imported only then.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ArchcError, Loc

if TYPE_CHECKING:  # not imported at run time: `import archc` stays cheap
    from .analysis import Report
    from .ir import Model

BUILTIN_PARAMS = ("include_top", "pooling")  # every spec takes them (archc.loader.BUILTIN_PARAM_NAMES)


@dataclass(frozen=True)
class Compiled:
    """A compiled spec: its IR (:class:`archc.ir.Model`) and the IR's analysis (:class:`archc.analysis.Report`:
    shapes, parameter counts and MACs per layer), as ``archc summary`` shows them."""

    spec: str  # the file compiled (a zoo spec's installed path)
    ir: Model = field(repr=False)
    analysis: Report = field(repr=False)
    overrides: dict = field(default_factory=dict)  # the params given, as given
    sets: tuple[str, ...] = ()  # the same, as --set KEY=VALUE arguments

    def __repr__(self) -> str:
        given = "".join(f", {k}={v!r}" for k, v in self.overrides.items())
        size = "x".join(map(str, self.input_shape))  # (*spatial, C)
        return (
            f"<archc.Compiled {self.name}{given}: input {size}, {self.trainable:,} trainable + "
            f"{self.non_trainable:,} non-trainable params, {self.macs:,} MACs>"
        )

    @property
    def name(self) -> str:
        return self.analysis.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(H, W, C) of one sample."""
        return tuple(self.analysis.input_shape)

    @property
    def outputs(self) -> dict:
        """Output name -> shape of one sample (``main``, and the auxiliary heads)."""
        return dict(self.analysis.outputs)

    @property
    def params(self) -> dict:
        """The network's params after the overrides."""
        return dict(self.ir.params)

    @property
    def trainable(self) -> int:
        return self.analysis.trainable

    @property
    def non_trainable(self) -> int:
        return self.analysis.non_trainable

    @property
    def total(self) -> int:
        return self.analysis.total

    @property
    def macs(self) -> int:
        return self.analysis.macs

    @property
    def layers(self) -> tuple:
        """One row per layer (path, kind, out_shape, trainable, non_trainable, macs), in execution order."""
        return tuple(self.analysis.rows)

    def summary(self) -> dict:
        """The analysis as ``archc summary --json`` prints it."""
        return self.analysis.to_json()

    def source(self, backend: str = "torch", **options) -> str:
        """The generated source for ``backend`` (what ``archc build`` would write), as a string."""
        return _emit(self, backend, options)

    def create_model(self, backend: str = "torch", **options):
        """A live model for ``backend``: the generated source executed in a fresh module, then its
        ``build_model()`` (a ``torch.nn.Module``, or a ``keras.Model``)."""
        module = self.module(backend, **options)
        return module.build_model()

    def module(self, backend: str = "torch", **options):
        """The generated module for ``backend``, executed in a fresh module object (no file, not in
        ``sys.modules``): its classes, ``build_model`` and constants."""
        import linecache
        import types

        text = self.source(backend, **options)
        stem = "".join(c if c.isalnum() else "_" for c in self.name)
        label = f"<archc {backend} {self.name}{_set_label(self.sets)}>"
        module = types.ModuleType(f"archc_generated_{backend}_{stem}")
        module.__file__ = label
        # tracebacks and inspect.getsource show the generated lines
        linecache.cache[label] = (len(text), None, text.splitlines(keepends=True), label)
        exec(compile(text, label, "exec"), module.__dict__)
        return module


def load(spec_or_name, **params) -> Compiled:
    """Compile a spec file or zoo spec with ``params`` overriding its own, and analyze it (no framework imported).

    Raises :class:`archc.ArchcError` (located at the spec's line) for a bad spec, an unknown name or an
    unknown param."""
    from .analysis import analyze
    from .catalog import resolve
    from .pipeline import compile_spec

    path = resolve(spec_or_name)
    sets = tuple(_check_params(path, params))
    model = compile_spec(path, sets)
    return Compiled(path, model, analyze(model), dict(params), sets)


def create_model(spec_or_name, backend: str = "torch", **params):
    """A live model of a spec file or zoo spec: ``torch.nn.Module`` (``backend="torch"``) or ``keras.Model``
    (``"keras"``), with ``params`` overriding the spec's (``classes=10``), as ``archc build --set`` would build
    it, but without writing any file. Imports the framework."""
    return load(spec_or_name, **params).create_model(backend)


def source(spec_or_name, backend: str = "torch", **params) -> str:
    """The generated source of a spec for ``backend``, as ``archc build`` would write it."""
    return load(spec_or_name, **params).source(backend)


def _check_params(path: str, params: dict) -> list[str]:
    """``params`` as ``--set`` arguments, after checking every name is a param of the spec."""
    from .errors import suggest
    from .loader import key_loc
    from .loader import load as load_data

    if not params:
        return []
    data = load_data(path)
    own = data.get("params")
    known = list(own) if isinstance(own, dict) else []
    for key in params:
        if key not in known and key not in BUILTIN_PARAMS:
            where = key_loc(data, "params") if known else Loc(path, 1, 1)
            hint = suggest(key, [*known, *BUILTIN_PARAMS]) or f" (params: {', '.join([*known, *BUILTIN_PARAMS])})"
            raise ArchcError(f"unknown param '{key}' of {os.path.basename(path)}{hint}", where)
    return [f"{key}={_yaml_value(key, value)}" for key, value in params.items()]


def _yaml_value(key: str, value) -> str:
    """A Python value as the YAML text of a ``--set`` value (JSON is YAML): tuples are lists."""

    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise ArchcError(f"param '{key}': {type(v).__name__} values cannot be given (numbers, strings, lists)", None)

    v = plain(value)
    if isinstance(v, float) and (v != v or abs(v) == float("inf")):
        raise ArchcError(f"param '{key}' must be a finite number, got {value!r}", None)
    return json.dumps(v)


def _emit(compiled: Compiled, backend: str, options: dict) -> str:
    from .backends import backend_options, get_backend, list_backends

    if backend not in list_backends():
        raise ArchcError(f"unknown backend '{backend}' (available: {', '.join(list_backends())})", None)
    accepted = backend_options(backend)
    for key in options:
        if key not in accepted:
            raise ArchcError(
                f"the {backend} backend has no option '{key}' (options: {', '.join(accepted) or 'none'})", None
            )
    try:
        return get_backend(backend, **options).emit(compiled.ir)
    except ArchcError as exc:
        if exc.loc is None:
            exc.loc = Loc(compiled.spec, 1, 1)
        if not exc.message.startswith(f"{backend} backend: "):  # some of the backends' messages name it already
            exc.message = f"{backend} backend: {exc.message}"
        raise


def _set_label(sets) -> str:
    return (" " + " ".join(sets)) if sets else ""


__all__ = ["Compiled", "create_model", "load", "source"]
