"""``archc build``: emit code for specs with one or all backends; atomic writes; ``--check``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ArchcError, InternalError, Loc


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a generated file gets the mode any new file gets
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def targets(specs: list[str], backends: list[str], out: str | None) -> list[tuple[str, str, Path]]:
    """(spec, backend, output path) for every pair; ``out`` is a file (one spec, one backend) or a folder."""
    result = []
    for spec in specs:
        stem = Path(spec).stem
        for b in backends:
            if out is None:
                path = Path("generated") / b / f"{stem}.py"
            elif out.endswith(".py"):
                if len(specs) * len(backends) > 1:
                    raise ArchcError("-o names a file, but several outputs would be written; give a folder", None)
                path = Path(out)
            else:
                path = Path(out) / (b if len(backends) > 1 else "") / f"{stem}.py"
            result.append((spec, b, path))
    return result


def parse_options(raw) -> dict:
    """``--option memory_efficient`` / ``--option key=value`` -> {key: value} (values read as YAML scalars)."""
    import yaml

    out = {}
    for item in raw or ():
        key, eq, value = item.partition("=")
        if not key.isidentifier():
            raise ArchcError(f"bad --option '{item}' (expected NAME or NAME=VALUE)", None)
        out[key] = yaml.safe_load(value) if eq else True
    return out


def build(
    specs: list[str],
    backend: str,
    out: str | None = None,
    check: bool = False,
    sets=(),
    options=(),
    unchanged: list[str] | None = None,
) -> list[str]:
    """Emit every (spec, backend); returns the outputs that were stale (written, unless ``check``: then nothing
    is written). The outputs already up to date are appended to ``unchanged`` when it is given."""
    from .backends import backend_options, get_backend, list_backends
    from .pipeline import compile_spec

    names = list_backends() if backend == "all" else [backend]
    for n in names:
        if n not in list_backends():
            raise ArchcError(f"unknown backend '{n}' (available: {', '.join(list_backends())}, all)", None)
    opts = parse_options(options)
    accepted = {n: backend_options(n) for n in names}
    for key in opts:
        if not any(key in a for a in accepted.values()):
            known = sorted({k for a in accepted.values() for k in a})
            raise ArchcError(
                f"no selected backend has the option '{key}' (options: {', '.join(known) or 'none'})", None
            )
    # emit everything first, write only when all succeeded: a failing spec leaves every file untouched
    results = []
    models = {}
    for spec, b, path in targets(specs, names, out):
        if spec not in models:
            models[spec] = compile_spec(spec, sets)
        try:
            text = get_backend(b, **{k: v for k, v in opts.items() if k in accepted[b]}).emit(models[spec])
        except ArchcError as exc:
            if exc.loc is None:
                exc.loc = Loc(spec, 1, 1)
            if not exc.message.startswith(f"{b} backend: "):  # some of the backends' messages name it already
                exc.message = f"{b} backend: {exc.message}"
            raise
        except Exception as exc:  # a bug in a backend, never the user's: say so, write nothing
            raise InternalError(
                f"internal error in the {b} backend: {type(exc).__name__}: {exc} (please report it with the spec)",
                Loc(spec, 1, 1),
            ) from exc
        try:  # every backend's output, not only the ones that compile it themselves
            compile(text, str(path), "exec")
        except SyntaxError as exc:
            raise InternalError(
                f"internal error: the {b} backend produced code that does not compile ({exc}); nothing was written",
                Loc(spec, 1, 1),
            ) from None
        results.append((path, text))
    stale = []
    for path, text in results:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            stale.append(str(path))
            if not check:
                atomic_write(path, text)
        elif unchanged is not None:
            unchanged.append(str(path))
    return stale
