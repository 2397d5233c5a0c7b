"""Backend registry: one package per framework, each registering an emitter by name."""

from __future__ import annotations

from collections.abc import Callable

_REGISTRY: dict[str, Callable] = {}


def register(name: str, factory: Callable) -> None:
    """Register a backend factory under ``name``; refuses duplicates."""
    if name in _REGISTRY:
        raise ValueError(f"backend '{name}' is already registered")
    _REGISTRY[name] = factory


def _discover() -> None:
    """Import every backend package below this one (each registers itself); cheap: no framework import."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


def list_backends() -> list[str]:
    """Names of the registered backends, sorted."""
    if not _REGISTRY:
        _discover()
    return sorted(_REGISTRY)


def get_backend(name: str):
    """The backend registered as ``name``."""
    if not _REGISTRY:
        _discover()
    if name not in _REGISTRY:
        raise KeyError(f"unknown backend '{name}' (available: {', '.join(list_backends()) or 'none'})")
    return _REGISTRY[name]()
