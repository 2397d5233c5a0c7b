"""The zoo: the specs archc ships (``specs/`` in the repository, installed as ``archc/zoo/``), found by name.

``archc build resnet50`` and ``archc.create_model("resnet50")`` name a zoo spec; an existing path always wins
over a name, so ``archc build resnet50`` in a folder holding a file ``resnet50`` builds that file. Nothing here
imports a framework, or even the compiler, until a table of counts is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArchcError

SUFFIXES = (".yaml", ".yml")


def zoo_dir() -> Path:
    """The folder of the zoo's specs: ``archc/zoo/`` when installed, the source tree's ``specs/`` otherwise."""
    here = Path(__file__).resolve().parent
    installed = here / "zoo"
    return installed if installed.is_dir() else here.parent / "specs"


def zoo_names() -> list[str]:
    """The names of the zoo's specs (file stems), sorted."""
    folder = zoo_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def zoo_path(name: str) -> Path | None:
    """The file of zoo spec ``name`` (written with or without ``.yaml``), or None."""
    stem = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
    if not stem or stem.startswith(".") or stem != os.path.basename(stem):
        return None
    path = zoo_dir() / f"{stem}.yaml"
    return path if path.is_file() else None


def is_name(arg: str) -> bool:
    """Whether ``arg`` reads as a zoo name rather than a path: no folder part, no YAML suffix."""
    return bool(arg) and os.path.basename(arg) == arg and "/" not in arg and not arg.endswith(SUFFIXES)


def resolve(spec) -> str:
    """The file to load for ``spec``, a path or a zoo name.

    An existing path is returned as given. Otherwise a bare name (``resnet50``) or a bare file name
    (``resnet50.yaml``, not in the current folder) is looked up in the zoo. A bare name that is neither is an
    :class:`ArchcError` suggesting close zoo names; any other missing path is returned unchanged, for the loader
    to report where it was looked for."""
    arg = os.fspath(spec)
    if os.path.exists(arg):
        return arg
    if os.path.basename(arg) == arg and "/" not in arg:
        found = zoo_path(arg)
        if found is not None:
            return str(found)
    if not is_name(arg):
        return arg
    raise ArchcError(f"'{arg}' is neither a spec file nor a zoo spec{_close(arg)}; `archc list` shows the zoo", None)


def _close(name: str) -> str:
    import difflib

    names = zoo_names()
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower().replace("-", "_"), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{by_lower[c]}'" for c in close) + "?)"


def first_line(doc: str | None, width: int = 100) -> str:
    """A one-line description from a spec's doc (its file's leading comment): the first line, cut before a
    parenthesis or clause it does not close on that line, and at ``width`` characters."""
    line = next((x.strip() for x in (doc or "").splitlines() if x.strip()), "")
    depth, cut = 0, len(line)
    for i, ch in enumerate(line):
        if ch == "(":
            depth, cut = depth + 1, (i if depth == 0 else cut)
        elif ch == ")":
            depth, cut = depth - 1, (len(line) if depth == 1 else cut)
    line = line[:cut].rstrip(" ,;:(")
    if not line.endswith(".") and ": " in line:
        line = line[: line.index(": ")]
    return line if len(line) <= width else line[: width - 3].rstrip() + "..."


def zoo_table() -> tuple[list[dict], list[str]]:
    """One row per zoo spec (name, file, input, counts, MACs, one-line description), and the error messages of
    the specs that did not compile. Compiles and analyzes every spec; imports no framework."""
    from .analysis import analyze
    from .pipeline import compile_spec

    rows, errors = [], []
    for name in zoo_names():
        path = str(zoo_dir() / f"{name}.yaml")
        try:
            model = compile_spec(path)
            report = analyze(model)
        except ArchcError as exc:
            errors.append(str(exc))
            continue
        rows.append(
            {
                "name": name,
                "file": path,
                "input": list(report.input_shape),
                "outputs": {k: list(v) for k, v in report.outputs.items()},
                "trainable_params": report.trainable,
                "non_trainable_params": report.non_trainable,
                "total_params": report.total,
                "macs": report.macs,
                "doc": first_line(model.doc),
            }
        )
    return rows, errors
