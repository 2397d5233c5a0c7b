"""Load a spec file: YAML read safely, every value keeps its ``file:line:col``.

Mappings become :class:`LDict` and sequences :class:`LList`; both remember where each
of their entries was written, so any later stage (pydantic validation, lowering,
analysis) can point at the exact place in the user's file. ``extends:`` is resolved
here (deep merge: mappings merge key by key, everything else is replaced), then
``--set`` overrides are applied.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import yaml

from .errors import ArchcError, Loc

MAX_FILE_BYTES = 1 << 19  # a spec is a page of YAML; refuse anything over 512 KiB (parsed within a second)
MAX_NODES = 100_000  # bound on values after alias expansion (defeats alias bombs; 10,000 block calls fit)
MAX_DEPTH = 200  # bound on nesting
MAX_EXTENDS = 32

_STD_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class LDict(dict):
    """A mapping that knows where it and each of its keys were written."""

    loc: Loc
    locs: dict  # key -> where its value was written
    klocs: dict  # key -> where the key itself was written


class LList(list):
    """A sequence that knows where it and each of its items were written."""

    loc: Loc
    locs: list


def _mk_dict(loc: Loc) -> LDict:
    d = LDict()
    d.loc, d.locs, d.klocs = loc, {}, {}
    return d


def _mk_list(loc: Loc) -> LList:
    lst = LList()
    lst.loc, lst.locs = loc, []
    return lst


def loc_of(container, key) -> Loc | None:
    """Where ``container[key]`` was written, if known."""
    locs = getattr(container, "locs", None)
    if isinstance(locs, dict):
        return locs.get(key, getattr(container, "loc", None))
    if isinstance(locs, list) and isinstance(key, int) and 0 <= key < len(locs):
        return locs[key]
    return getattr(container, "loc", None)


def key_loc(container, key) -> Loc | None:
    """Where the key ``key`` of a mapping was written (falls back to its value)."""
    klocs = getattr(container, "klocs", None)
    if isinstance(klocs, dict) and key in klocs:
        return klocs[key]
    return loc_of(container, key)


def locate(data, path) -> Loc | None:
    """The location of the value at ``path`` (a sequence of keys), or of its nearest parent."""
    best = getattr(data, "loc", None)
    cur = data
    for key in path:
        if isinstance(cur, dict) and key in cur:
            best = loc_of(cur, key) or best
            cur = cur[key]
        elif isinstance(cur, list) and isinstance(key, int) and 0 <= key < len(cur):
            best = loc_of(cur, key) or best
            cur = cur[key]
        else:
            break
    return best


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it: 10x faster
_NOKEY = object()


def _mark(mark, file: str) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


class _Frame:
    """An open mapping or sequence while events stream in."""

    __slots__ = ("obj", "anchor", "size", "height", "key", "kloc")

    def __init__(self, obj, anchor):
        self.obj, self.anchor, self.size, self.height, self.key, self.kloc = obj, anchor, 1, 1, _NOKEY, None


def _copy(v):
    """A fresh copy of located data (an alias must not share containers with its anchor)."""
    if isinstance(v, LDict):
        out = _mk_dict(v.loc)
        for k, x in v.items():
            out[k] = _copy(x)
        out.locs, out.klocs = dict(v.locs), dict(v.klocs)
        return out
    if isinstance(v, LList):
        out = _mk_list(v.loc)
        out.extend(_copy(x) for x in v)
        out.locs = list(v.locs)
        return out
    return v


def _build(text: str, file: str):
    """Located data from a stream of YAML parse events, with an explicit stack (no recursion: deep
    nesting is refused at MAX_DEPTH as soon as it is reached) and alias expansion counted (bombs refused)."""
    scalars = yaml.SafeLoader("")  # its resolver and scalar constructors only
    anchors: dict[str, tuple] = {}  # name -> (value, values in it, nesting height, where)
    stack: list[_Frame] = []
    root, root_loc, count, docs = _NOKEY, None, 0, 0

    def add(value, loc, size, height):
        nonlocal root, root_loc
        if not stack:
            root, root_loc = value, loc
            return
        f = stack[-1]
        f.size += size
        f.height = max(f.height, height + 1)
        c = f.obj
        if isinstance(c, LList):
            c.append(value)
            c.locs.append(loc)
        elif f.key is _NOKEY:
            if not isinstance(value, str):
                raise ArchcError(f"mapping keys must be strings, got {value!r}", loc)
            if value in c:
                raise ArchcError(f"duplicate key '{value}'", loc)
            f.key, f.kloc = value, loc
        else:
            c[f.key], c.locs[f.key], c.klocs[f.key] = value, loc, f.kloc
            f.key = _NOKEY

    def grow(n, loc, height):
        nonlocal count
        count += n
        if count > MAX_NODES:
            what = " (alias/anchor bomb?)" if anchors else "; a spec is a page of YAML"
            raise ArchcError(f"document expands to more than {MAX_NODES} values{what}", loc)
        if len(stack) + height - 1 > MAX_DEPTH:
            raise ArchcError(f"nesting deeper than {MAX_DEPTH} levels", loc)

    def tag_of(ev, kind):
        tag = ev.tag
        if tag is None or tag == "!":
            tag = resolve(kind, ev.value if kind is yaml.ScalarNode else None, ev.implicit)
        return tag

    def check_tag(tag, loc, at_key):
        if tag == "tag:yaml.org,2002:merge" and at_key:
            raise ArchcError("YAML merge keys ('<<') are not supported; use 'extends'", loc)
        if tag not in _STD_TAGS:
            raise ArchcError(f"YAML tag '{tag}' is not allowed in a spec", loc)

    resolve = scalars.resolve
    constructors = scalars.yaml_constructors
    str_tag = "tag:yaml.org,2002:str"
    for ev in yaml.parse(text, Loader=_LOADER):
        t = type(ev)
        if t is yaml.StreamStartEvent or t is yaml.StreamEndEvent or t is yaml.DocumentEndEvent:
            continue
        m = ev.start_mark
        loc = Loc(file, m.line + 1, m.column + 1)
        at_key = bool(stack) and stack[-1].key is _NOKEY and type(stack[-1].obj) is LDict
        if t is yaml.ScalarEvent:  # the common case first
            grow(1, loc, 1)
            tag = tag_of(ev, yaml.ScalarNode)
            if tag == str_tag:
                value = ev.value
            else:
                check_tag(tag, loc, at_key)
                node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
                try:
                    value = constructors[tag](scalars, node)
                except (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError, IndexError) as exc:
                    # PyYAML's scalar constructors raise what their parsing raises (`!!bool maybe`: KeyError)
                    short = "!!" + tag.rsplit(":", 1)[-1]
                    detail = f": {exc}" if isinstance(exc, (yaml.YAMLError, ValueError, OverflowError)) else ""
                    raise ArchcError(f"{ev.value!r} is not a valid {short}{detail}", loc) from None
            if ev.anchor is not None:
                anchors[ev.anchor] = (value, 1, 1, loc)
            add(value, loc, 1, 1)
        elif t is yaml.MappingStartEvent or t is yaml.SequenceStartEvent:
            grow(1, loc, 1)
            is_map = t is yaml.MappingStartEvent
            check_tag(tag_of(ev, yaml.MappingNode if is_map else yaml.SequenceNode), loc, False)
            if at_key:
                raise ArchcError("mapping keys must be strings, not collections", loc)
            stack.append(_Frame(_mk_dict(loc) if is_map else _mk_list(loc), ev.anchor))
        elif t is yaml.MappingEndEvent or t is yaml.SequenceEndEvent:
            f = stack.pop()
            if f.anchor is not None:
                anchors[f.anchor] = (f.obj, f.size, f.height, f.obj.loc)
            add(f.obj, f.obj.loc, f.size, f.height)
        elif t is yaml.AliasEvent:
            if ev.anchor not in anchors:
                raise ArchcError(f"unknown alias '*{ev.anchor}'", loc)
            value, size, height, where = anchors[ev.anchor]
            grow(size, loc, height)
            add(_copy(value), where, size, height)
        elif t is yaml.DocumentStartEvent:
            docs += 1
            if docs > 1:
                raise ArchcError("a spec file holds one YAML document; found a second one", loc)
    return root, root_loc


def read_text(path: str) -> str:
    """Read a spec file as UTF-8 text, refusing directories, binaries and huge files."""
    p = Path(path)
    if p.is_dir():
        raise ArchcError("is a directory, not a spec file", Loc(path, 1, 1))
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO, device or socket would block or never end
            raise ArchcError("is a device, pipe or socket, not a spec file", Loc(path, 1, 1))
        if st.st_size > MAX_FILE_BYTES:
            raise ArchcError(f"file is {st.st_size} bytes; a spec may be at most {MAX_FILE_BYTES}", Loc(path, 1, 1))
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # bounded, even if the file grows meanwhile
        if len(raw) > MAX_FILE_BYTES:
            raise ArchcError(f"file is over {MAX_FILE_BYTES} bytes, the most a spec may be", Loc(path, 1, 1))
    except OSError as exc:
        raise ArchcError(f"cannot read: {exc.strerror or exc}", Loc(path, 1, 1)) from None
    if b"\x00" in raw:
        raise ArchcError("binary file, not a YAML spec", Loc(path, 1, 1))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ArchcError("file is not valid UTF-8", Loc(path, line, col)) from None


def parse_yaml(text: str, file: str):
    """Parse one YAML document into located data (LDict / LList / scalars)."""
    try:
        data, loc = _build(text, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _mark(mark, file) if mark else Loc(file, 1, 1)
        raise ArchcError(f"YAML syntax error: {exc.problem or exc}", loc) from None
    except yaml.YAMLError as exc:
        raise ArchcError(f"YAML error: {exc}", Loc(file, 1, 1)) from None
    if data is _NOKEY or data is None:
        raise ArchcError("empty spec file", Loc(file, 1, 1))
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a scalar ({type(data).__name__})"
        raise ArchcError(f"a spec must be a mapping of keys to values, not {kind}", loc)
    return data


def deep_merge(base, over):
    """Merge ``over`` into ``base``: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = _mk_dict(over.loc)
        for k, v in base.items():
            out[k] = v
            out.locs[k], out.klocs[k] = loc_of(base, k), key_loc(base, k)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
            out.locs[k], out.klocs[k] = loc_of(over, k), key_loc(over, k)
        return out
    return over


def load_file(path: str, _stack: tuple = ()) -> LDict:
    """Read ``path`` and resolve its ``extends:`` chain (no ``--set`` yet)."""
    real = os.path.realpath(path)
    data = parse_yaml(read_text(path), path)
    base_ref = data.get("extends")
    if base_ref is None:
        return data
    where = loc_of(data, "extends")
    if not isinstance(base_ref, str) or not base_ref:
        raise ArchcError("'extends' must be the path of another spec file", where)
    base_path = os.path.join(os.path.dirname(path), base_ref)
    stack = _stack + (real,)
    if os.path.realpath(base_path) in stack:
        chain = " -> ".join(os.path.basename(s) for s in stack + (os.path.realpath(base_path),))
        raise ArchcError(f"'extends' cycle: {chain}", where)
    if len(stack) > MAX_EXTENDS:
        raise ArchcError(f"'extends' chain longer than {MAX_EXTENDS}", where)
    if not os.path.isfile(base_path):
        what = "is not a spec file" if os.path.exists(base_path) else "does not exist"
        raise ArchcError(f"'extends' names '{base_ref}', which {what} (looked for {base_path})", where)
    base = load_file(base_path, stack)
    own = _mk_dict(data.loc)
    for k, v in data.items():
        if k != "extends":
            own[k] = v
            own.locs[k], own.klocs[k] = loc_of(data, k), key_loc(data, k)
    return deep_merge(base, own)


_SCI_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
TOP_KEYS = (
    "name",
    "class_name",
    "doc",
    "input",
    "params",
    "defaults",
    "blocks",
    "network",
    "top",
    "heads",
    "outputs",
    "loss_weight",
)
BUILTIN_PARAM_NAMES = ("include_top", "pooling")  # archc.spec.BUILTIN_PARAMS: every spec has them, set only here


def apply_set(data: LDict, assignment: str) -> None:
    """Apply one ``--set key.path=value``; a bare key names a network param, or a built-in one (include_top, pooling).

    Locations: the file is ``--set KEY=VALUE`` (the argument as written), line 1; problems with the key
    are at column 1, the value is at its own column (``--set growth_rate=-3:1:13``)."""
    loc = Loc(f"--set {assignment}", 1, 1)
    if "=" not in assignment:
        raise ArchcError("--set takes key=value", loc)
    key, _, raw = assignment.partition("=")
    vloc = Loc(loc.file, 1, len(key) + 2 + (len(raw) - len(raw.lstrip())))
    parts = [p for p in key.strip().split(".")]
    if not all(parts) or not parts:
        raise ArchcError(f"bad key '{key}' in --set", loc)
    if parts[0] not in TOP_KEYS:
        parts = ["params", *parts]
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ArchcError(f"cannot read value '{raw}'", vloc) from None
    if isinstance(value, str) and _SCI_FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 as a string; on a command line it means the number
    if isinstance(value, (dict, list)):
        value = parse_yaml(f"v: {raw}", f"--set {assignment}")["v"]
    if parts[0] == "params" and len(parts) == 2 and parts[1] in BUILTIN_PARAM_NAMES:
        # a built-in param is no param of the spec's: kept aside (value, where) for the lowering to check and apply
        if not hasattr(data, "builtin_sets"):
            data.builtin_sets = {}
        data.builtin_sets[parts[1]] = (value, vloc)
        return
    if parts[0] == "params":
        params = data.get("params")
        if len(parts) == 2 and (not isinstance(params, dict) or parts[1] not in params):
            from .errors import suggest

            known = list(params) if isinstance(params, dict) else []
            raise ArchcError(f"unknown param '{parts[1]}'{suggest(parts[1], known)}", loc)
    cur = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(cur, list):
            try:
                idx = int(part)
                cur = cur[idx]
                continue
            except (ValueError, IndexError):
                raise ArchcError(f"'{'.'.join(parts[: i + 1])}' is not an index of a list", loc) from None
        if not isinstance(cur, dict):
            raise ArchcError(f"'{'.'.join(parts[:i])}' is not a mapping", loc)
        if part not in cur:
            cur[part] = _mk_dict(loc)
            cur.locs[part] = cur.klocs[part] = loc
        cur = cur[part]
    last = parts[-1]
    if isinstance(cur, list):
        try:
            cur[int(last)] = value
            cur.locs[int(last)] = vloc
        except (ValueError, IndexError):
            raise ArchcError(f"'{last}' is not an index of the list", loc) from None
    elif isinstance(cur, dict):
        cur[last] = value
        cur.locs[last] = vloc
        if hasattr(cur, "klocs"):
            cur.klocs[last] = loc
    else:
        raise ArchcError(f"'{'.'.join(parts[:-1])}' is not a mapping", loc)


def is_builtin_set(assignment: str) -> bool:
    """Whether ``--set assignment`` sets a built-in param (include_top, pooling; also as ``params.NAME``)."""
    parts = assignment.partition("=")[0].strip().split(".")
    return parts[-1] in BUILTIN_PARAM_NAMES and parts[:-1] in ([], ["params"])


def without_builtin_sets(sets) -> list[str]:
    """``sets`` minus the built-in params': the ``--set`` list of the full model (its top included) that a
    headless model was made from (``archc convert-weights`` compiles it to name the checkpoint's top tensors)."""
    return [s for s in sets if not is_builtin_set(s)]


def load(path: str, sets: list[str] | tuple = ()) -> LDict:
    """Load a spec: read, resolve ``extends``, apply ``--set`` overrides."""
    data = load_file(path)
    for s in sets:
        apply_set(data, s)
    return data
