"""The pipeline in one call: load -> spec -> lower -> IR (-> analyze)."""

from __future__ import annotations

import contextlib
import gc

from pydantic import ValidationError

from . import ir, limits
from .errors import ArchcError, suggest
from .loader import LDict, key_loc, load, loc_of
from .spec import IDENT_PATTERN, KINDS, HeadSpec, InputSpec, Spec
from .spec import BlockDef as BlockSpec

_TYPE_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "string_pattern_mismatch": "a $param / ${expression}",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "literal_error": "'same' or 'valid'",
}


def _short(v) -> str:
    """A short repr of a user value for messages (huge or deeply nested input stays readable)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 3, 6, 6, 60, 60
    return r.repr(v)


def _walk(data, path):
    """Follow a pydantic error path through located data; returns (container, key, kind_context)."""
    cur, container, key, kinds = data, None, None, []
    for p in path:
        if isinstance(cur, dict) and p in cur:
            container, key = cur, p
            if isinstance(p, str) and (p in KINDS) and len(cur) == 1:
                kinds.append(p)
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and 0 <= p < len(cur):
            container, key = cur, p
            cur = cur[p]
        # else: a union tag or model name inserted by pydantic; skip it
    return container, key, kinds, cur


def _allowed_keys(path, kinds) -> list[str]:
    """The keys valid in the mapping at ``path`` (the parent of an unknown key)."""
    strs = [p for p in path if isinstance(p, str)]
    if kinds:
        return [f.alias or n for n, f in KINDS[kinds[-1]].model_fields.items()]
    if not strs:
        return [f.alias or n for n, f in Spec.model_fields.items()] + ["extends"]
    if strs == ["input"]:
        return [f.alias or n for n, f in InputSpec.model_fields.items()]
    if strs[0] == "heads" and len(strs) == 2:
        return [f.alias or n for n, f in HeadSpec.model_fields.items()]
    if strs[0] == "blocks" and len(strs) == 2:
        return [f.alias or n for n, f in BlockSpec.model_fields.items()]
    return []


def located_validation_error(exc: ValidationError, data: LDict, file: str) -> ArchcError:
    """The first problem of a pydantic validation error, as a located ArchcError."""
    errors = exc.errors(include_url=False)
    # prefer unknown-key errors (most actionable), then the deepest path
    errors.sort(key=lambda e: (e["type"] != "extra_forbidden", -len(e["loc"])))
    e = errors[0]
    path = e["loc"]
    container, key, kinds, cur = _walk(data, path)
    what = f" in '{kinds[-1]}'" if kinds else ""
    if e["type"] == "extra_forbidden":
        bad = path[-1]
        allowed = _allowed_keys(path[:-1], kinds)
        hint = suggest(bad, allowed)
        valid = f" (valid keys: {', '.join(sorted(allowed))})" if allowed and not hint else ""
        loc = key_loc(container, key) if container is not None else data.loc
        return ArchcError(f"unknown key '{bad}'{what}{hint}{valid}", loc)
    if e["type"] == "missing":
        loc = loc_of(container, key) if container is not None else data.loc
        return ArchcError(f"missing key '{path[-1]}'{what}", loc)
    is_key = bool(path) and path[-1] == "[key]"
    if container is None:
        loc = data.loc
    else:
        loc = key_loc(container, key) if is_key else loc_of(container, key)
    if e["type"] == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") == IDENT_PATTERN:
        what_name = "name" if is_key or key == "name" else "value"
        return ArchcError(
            f"{what_name} {_short(key if is_key else cur)} is not a valid identifier "
            "(letters, digits and '_', not starting with a digit, at most 64 characters)",
            loc,
        )
    if e["type"] == "string_too_long" and (is_key or key == "name"):
        return ArchcError(f"name {_short(key if is_key else cur)} is too long (at most 64 characters)", loc)
    same = [x for x in errors if x["loc"][: len(path) - 1] == path[:-1] or x["loc"] == path]
    wants = sorted({_TYPE_WORDS.get(x["type"], "") for x in same} - {""})
    field = key if isinstance(key, str) else None
    label = f"'{field}'" if field else "value"
    if wants:
        hint = ""
        if isinstance(cur, str):
            try:
                float(cur)
                hint = f" (YAML reads {cur} as a string: write it with a dot, e.g. 1.0e-5)"
            except ValueError:
                pass
        return ArchcError(f"{label}{what} must be {' or '.join(wants)}, got {_short(cur)}{hint}", loc)
    msg = e["msg"].removeprefix("Value error, ")
    return ArchcError(f"{label}{what}: {msg} (got {_short(cur)})", loc)


def load_spec(path: str, sets=()) -> tuple[LDict, Spec]:
    data = load(path, sets)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise located_validation_error(exc, data, path) from None
    return data, spec


def compile_spec(path: str, sets=()) -> ir.Model:
    """Load, validate and lower a spec file; raises ArchcError with a location on bad input."""
    from .lower import lower

    with _no_gc():
        data, spec = load_spec(path, sets)
        try:
            model = lower(data, spec, path)
        except RecursionError:
            raise ArchcError("spec nests too deeply", data.loc) from None
        limits.check(model)
        return model


def check_spec(path: str, sets=()) -> tuple[ir.Model, list]:
    """:func:`compile_spec` and the lints of the result (:class:`~archc.lint.LintWarning`, located)."""
    from .lint import lint
    from .lower import Lowerer

    with _no_gc():
        data, spec = load_spec(path, sets)
        try:
            lowerer = Lowerer(data, spec, path)
            model = lowerer.lower()
        except RecursionError:
            raise ArchcError("spec nests too deeply", data.loc) from None
        limits.check(model)
        return model, lint(lowerer, model)


@contextlib.contextmanager
def _no_gc():
    """Compiling builds many small acyclic objects; the cycle collector's full passes over them made the
    time grow faster than the spec (10,000 blocks: 1.2 s with it, 0.75 s without). Reference counting
    still frees everything."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
