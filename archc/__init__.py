"""archc: a compiler for CNN architectures written in YAML.

The Python API (:mod:`archc.api`), imported on first use so that ``import archc`` and the command line stay
cheap (no framework is imported until :func:`create_model` runs a generated model):

- ``archc.create_model(spec_or_name, backend="torch" | "keras", **params)``: a live model, no file written;
- ``archc.load(spec_or_name, **params)``: the compiled IR with its analysis (shapes, counts, MACs);
- ``archc.source(spec_or_name, backend, **params)``: the generated code as a string;
- ``archc.list_zoo()``: the names of the specs archc ships (``archc list`` shows them with their counts).
"""

__version__ = "0.2.0"

__all__ = ["ArchcError", "Compiled", "create_model", "list_zoo", "load", "source"]

_API = {"Compiled", "create_model", "load", "source"}


def list_zoo() -> list[str]:
    """The names of the zoo's specs (``archc list``), each usable wherever a spec file is."""
    from .catalog import zoo_names

    return zoo_names()


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "ArchcError":
        from .errors import ArchcError

        return ArchcError
    raise AttributeError(f"module 'archc' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
