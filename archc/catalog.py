"""The zoo: the specs archc ships (``specs/`` in the repository, installed as ``archc/zoo/``), found by name.

``archc build resnet50`` and ``archc.create_model("resnet50")`` name a zoo spec; an existing path always wins
over a name, so ``archc build resnet50`` in a folder holding a file ``resnet50`` builds that file. Nothing here
imports a framework, or even the compiler, until a table of counts is asked for.
"""

from __future__ import annotations

import json
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


def zoo_table(cache: bool = True) -> tuple[list[dict], list[str]]:
    """One row per zoo spec (name, file, input, counts, MACs, one-line description), and the error messages of
    the specs that did not compile. Imports no framework.

    Compiling and analyzing the whole zoo takes seconds; the rows are kept in :func:`cache_dir` under a key
    that is the hash of every spec and every file of archc itself (any change to either computes them anew)."""
    path = _cache_file() if cache else None
    if path is not None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))["rows"], []
        except (OSError, ValueError, KeyError, TypeError):
            pass
    rows, errors = _compute_table()
    if path is not None and not errors:
        try:
            from .build import atomic_write

            atomic_write(path, json.dumps({"rows": rows}))
        except OSError:  # a read-only home: no cache, same answer
            pass
    return rows, errors


def cache_dir() -> Path | None:
    """Where ``archc list`` keeps its table: ``$ARCHC_CACHE_DIR`` (empty: no cache), else
    ``$XDG_CACHE_HOME/archc``, else ``~/.cache/archc``."""
    if "ARCHC_CACHE_DIR" in os.environ:
        return Path(os.environ["ARCHC_CACHE_DIR"]) if os.environ["ARCHC_CACHE_DIR"] else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archc"


def _cache_file() -> Path | None:
    import hashlib

    folder = cache_dir()
    if folder is None:
        return None
    here, zoo = Path(__file__).resolve().parent, zoo_dir()
    h = hashlib.sha256(f"{zoo}\n".encode())
    files = {*here.rglob("*.py"), *here.rglob("*.yaml"), *zoo.glob("*.yaml")}
    try:
        for f in sorted(files):
            h.update(f"{f}\n".encode())
            h.update(f.read_bytes())
    except OSError:
        return None
    return folder / f"zoo-{h.hexdigest()[:24]}.json"


def _compute_table() -> tuple[list[dict], list[str]]:
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
