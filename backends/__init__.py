"""Backend registry: one package per framework, each registering an emitter by name."""

from __future__ import annotations

import functools
from collections.abc import Callable

_REGISTRY: dict[str, Callable] = {}


def register(name: str, factory: Callable) -> None:
    """Register a backend factory under ``name``; refuses duplicates."""
    if name in _REGISTRY:
        raise ValueError(f"backend '{name}' is already registered")
    _REGISTRY[name] = factory


def _packages() -> list[str]:
    """Backend packages below this one, found without importing them (keeps `archc --help` fast)."""
    import pkgutil

    return sorted(info.name for info in pkgutil.iter_modules(__path__) if info.ispkg)


def list_backends() -> list[str]:
    """Names of the available backends, sorted."""
    return sorted(set(_REGISTRY) | set(_packages()))


def get_backend(name: str, **options):
    """The backend registered as ``name``, built with its ``options`` (see its ``options`` attribute)."""
    if name not in _REGISTRY and name in _packages():
        import importlib

        importlib.import_module(f"{__name__}.{name}")  # the package registers itself
    if name not in _REGISTRY:
        raise KeyError(f"unknown backend '{name}' (available: {', '.join(list_backends()) or 'none'})")
    return _REGISTRY[name](**options)


def backend_options(name: str) -> dict[str, str]:
    """The build options a backend accepts: name -> one-line description."""
    get_backend(name)
    return dict(getattr(_REGISTRY[name], "options", {}))


def weight_layout(name: str):
    """The weight declaration of backend ``name`` (an :class:`archc.weights.Declaration`, the ``LAYOUT`` of its
    ``weights`` module): where its tensors live per weighted IR node kind, and their layouts."""
    import importlib

    if name not in list_backends():
        raise KeyError(f"unknown backend '{name}' (available: {', '.join(list_backends()) or 'none'})")
    try:
        module = importlib.import_module(f"{__name__}.{name}.weights")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}.weights":
            raise
        raise KeyError(f"backend '{name}' declares no weights (no {__name__}.{name}.weights module)") from None
    return module.LAYOUT


@functools.cache
def reserved_layer_names() -> dict[str, str]:
    """Names some backend cannot give a layer: name -> why (``RESERVED_LAYER_NAMES`` of each backend's ``names``
    module, which imports nothing), so that ``archc check`` refuses what a backend would (what check accepts, every
    backend builds)."""
    import importlib

    out: dict[str, str] = {}
    for name in _packages():  # a backend registered in-process without a package declares none
        try:
            module = importlib.import_module(f"{__name__}.{name}.names")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}.names":
                raise
            continue
        for layer, why in module.RESERVED_LAYER_NAMES.items():
            out.setdefault(layer, why)
    return out
