"""The pipeline in one call: load -> spec -> lower -> IR (-> analyze)."""

from __future__ import annotations

import contextlib
import gc

from pydantic import ValidationError

from . import ir, limits
from .errors import ArchcError, closest, collect, suggest
from .loader import LDict, key_loc, load, loc_of
from .spec import IDENT_PATTERN, KINDS, REF_PATTERN, HeadSpec, InputSpec, Spec
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
    for i, p in enumerate(path):
        if isinstance(cur, dict) and p in cur:
            container, key = cur, p
            # an item's kind: the key of a one-key mapping at an item's place (an index, then the tag), not an
            # attribute named as a kind is (upsample's `scale`)
            if isinstance(p, str) and (p in KINDS) and len(cur) == 1 and i > 0 and isinstance(path[i - 1], int):
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
    return _located(exc.errors(include_url=False), data)


def _located(errors: list, data: LDict) -> ArchcError:
    """One problem, as a located ArchcError, from pydantic's errors about it (a union's alternatives each give one)."""
    # prefer unknown-key errors (most actionable), then the deepest path
    errors.sort(key=lambda e: (e["type"] != "extra_forbidden", -len(e["loc"])))
    e = errors[0]
    path = e["loc"]
    container, key, kinds, cur = _walk(data, path)
    what = f" in '{kinds[-1]}'" if kinds else ""
    if e["type"] == "extra_forbidden":
        allowed = _allowed_keys(path[:-1], kinds)
        bad = [x["loc"][-1] for x in errors if x["type"] == "extra_forbidden" and x["loc"][:-1] == path[:-1]]
        hints = [suggest(b, allowed) for b in bad]
        valid = f" (valid keys: {', '.join(sorted(allowed))})" if allowed and not all(hints) else ""
        loc = key_loc(container, key) if container is not None else data.loc
        if len(bad) > 1:  # one mapping's unknown keys are one error (a wrong kind: all of its attributes)
            keys = ", ".join(f"'{b}'{h}" for b, h in zip(bad, hints))
            return ArchcError(f"unknown keys {keys}{what}{valid}", loc)
        return ArchcError(f"unknown key '{path[-1]}'{what}{hints[0]}{valid}", loc)
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
    if e["type"] == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") == REF_PATTERN and not is_key:
        return ArchcError(
            f"{_short(cur)} is not a reference: the name of an earlier item, an input, or a dotted path of names "
            "into named seqs (backbone.layer3); each name letters, digits and '_', not starting with a digit",
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


ITEM_TAGS = frozenset(KINDS) | {"call"}  # what pydantic's errors name after an item's index (its union's tag)


def _item_end(path) -> int | None:
    """Where the innermost item in a pydantic error's path ends (the index of its union tag), or None if the
    error is in no item (``('network', 3, 'conv', 'conv', 'kernal')``: 2)."""
    end = None
    for i in range(1, len(path)):
        if path[i] in ITEM_TAGS and isinstance(path[i - 1], int):
            end = i
    return end


def _problem(e) -> tuple:
    """Which problem of the spec a pydantic error is about: its innermost item (or top-level section) and the
    attribute in it; the missing keys of one mapping are one problem (the first one is reported), and so are its
    unknown keys (all are named)."""
    path = e["loc"]
    if e["type"] == "missing":
        return (*path[:-1], "<missing>")
    if e["type"] == "extra_forbidden":
        return (*path[:-1], "<unknown>")
    end = _item_end(path)
    if end is not None:  # the item, its kind (or block), its attribute
        return tuple(path[: end + 3])
    return tuple(path[:3] if path and path[0] in ("blocks", "heads", "defaults") else path[:2])


def validation_errors(exc: ValidationError, data: LDict) -> tuple[list[ArchcError], LDict | None, dict | None]:
    """Every independent problem of a pydantic validation error, located (one error each: :func:`_problem`);
    and a copy of ``data`` repaired so that the lowering can go on and find the other errors (None if it
    cannot): an item with a problem becomes :func:`archc.lower.invalid_item`, an unknown key outside the
    items becomes the key it is a typo of; an input with another problem becomes a stand-in (the third value,
    else None; also the one to use if the repaired input does not validate) whose shape the lowering takes as
    unknown, as after an input error of its own; any other problem (the params, a head's ``at``...) stops there."""
    from .lower import invalid_item

    errors = exc.errors(include_url=False)
    # an unknown key in a mapping is the problem; its missing keys follow from it (`kernal` for `kernel`)
    unknown_in = {e["loc"][:-1] for e in errors if e["type"] == "extra_forbidden"}
    problems: dict[tuple, list] = {}
    for e in errors:
        if e["type"] == "missing" and e["loc"][:-1] in unknown_in:
            continue
        problems.setdefault(_problem(e), []).append(e)
    repaired = _copy_data(data)
    fixes, out, renamed = [], [], set()
    bad_input_keys: set = set()  # the input's keys with a problem (None: the input as a whole)
    stand_in_needed = False
    for group in problems.values():
        out.append(_located(group, data))
        path = group[0]["loc"]
        end = _item_end(path)
        if path and path[0] == "input":
            bad_input_keys.update(e["loc"][1] if len(e["loc"]) > 1 else None for e in group)
        if end is not None:
            container, key, _, raw_item = _walk(repaired, path[:end])
            if isinstance(container, list) and key == path[end - 1]:
                fixes.append((container, key, invalid_item(raw_item)))
            else:
                repaired = None
        elif group[0]["type"] == "extra_forbidden" and repaired is not None:
            # an unknown key outside the items is taken for the key it is a typo of, if that one is not given
            # (left out, `parms:` or `widht:` would make errors of their own: unknown params, no input width)
            for e in group:
                container, key, kinds, _ = _walk(repaired, e["loc"])
                meant = closest(key, _allowed_keys(e["loc"][:-1], kinds)) if isinstance(key, str) else None
                if (
                    isinstance(container, dict)
                    and key == e["loc"][-1]
                    and meant is not None
                    and meant not in container
                    and (id(container), meant) not in renamed  # two typos of one key: which one is meant?
                ):
                    fixes.append((container, key, meant))
                    renamed.add((id(container), meant))
                else:
                    repaired = None
        elif path and path[0] == "input":  # the network's own checks go on with an input of unknown shape
            stand_in_needed = True
        else:
            repaired = None
    stand_in = _stand_in_input(data.get("input"), bad_input_keys) if bad_input_keys else None
    if repaired is not None:
        for container, key, fix in fixes:
            if isinstance(fix, str):  # the key renamed, its value and places kept
                container[fix] = container.pop(key)
                container.locs[fix], container.klocs[fix] = container.locs.get(key), container.klocs.get(key)
            else:
                container[key] = fix
        if stand_in_needed:
            repaired["input"] = stand_in
    return out, repaired, stand_in


def _stand_in_input(raw, bad: set) -> dict:
    """An input that validates, for the lowering to go on past the input's own problems (its shape is taken as
    unknown): the given name kept where it has no problem of its own, so that references to it still resolve."""
    stand_in = {"height": 1, "width": 1, "channels": 1}
    name = raw.get("name") if isinstance(raw, dict) and None not in bad and "name" not in bad else None
    if isinstance(name, str):
        stand_in["name"] = name
    return stand_in


def _copy_data(data: LDict) -> LDict:
    """A copy of located data (its containers fresh, their locations kept; the built-in --set values too)."""
    from .loader import _copy

    out = _copy(data)
    if hasattr(data, "builtin_sets"):
        out.builtin_sets = data.builtin_sets
    return out


def load_spec(path: str, sets=()) -> tuple[LDict, Spec]:
    data = load(path, sets)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise located_validation_error(exc, data, path) from None
    return data, spec


def compile_spec(path: str, sets=()) -> ir.Model:
    """Load, validate and lower a spec file; raises ArchcError with a location on bad input (every independent
    error of the spec: :class:`~archc.errors.ErrorList` when there are several)."""
    with _no_gc():
        return _compile(path, sets)[1]


def check_spec(path: str, sets=()) -> tuple[ir.Model, list]:
    """:func:`compile_spec` and the lints of the result (:class:`~archc.lint.LintWarning`, located)."""
    from .lint import lint

    with _no_gc():
        lowerer, model = _compile(path, sets)
        return model, lint(lowerer, model)


def _compile(path: str, sets=()):
    """(lowerer, model). Errors are collected, not raised at the first one: the validation's (each item's
    problems), then the lowering's, which goes on past an item that fails (:class:`~archc.lower.Lowerer`,
    recovering); all of them are raised together, in the order of their places."""
    from .lower import Lowerer

    data = load(path, sets)  # a YAML or file error stops here: there is nothing to go on with
    errors: list[ArchcError] = []
    input_failed = False
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        errors, data, stand_in = validation_errors(exc, data)
        spec = None
        if data is not None:
            input_failed = stand_in is not None and data["input"] is stand_in
            try:
                spec = Spec.model_validate(data)
            except ValidationError:
                spec = None
            if spec is None and stand_in is not None and not input_failed:  # the input's repair did not take
                data["input"], input_failed = stand_in, True
                try:
                    spec = Spec.model_validate(data)
                except ValidationError:  # nor did the stand-in: the errors found so far are the report
                    spec = None
    if spec is not None:
        lowerer = Lowerer(data, spec, path, errors, input_failed=input_failed)
        try:
            model = lowerer.lower()
        except RecursionError:
            errors.append(ArchcError("spec nests too deeply", data.loc))
        except ArchcError as exc:
            if not any(exc is e for e in errors):
                errors.append(exc)
    if errors:
        raise collect(errors, path) from None
    limits.check(model)
    return lowerer, model


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
