"""Names of other frameworks' checkpoints for archc's families, as data (``archc/stdlib/torchvision/*.yaml``,
``archc/stdlib/keras_applications/*.yaml``).

A mapping file sits next to the family it is for (``stdlib/torchvision/resnet.yaml`` for
``stdlib/resnet.yaml``) and holds ordered regex rewrite rules from the generated PyTorch model's
state_dict keys to torchvision's; see ``stdlib/torchvision/README.md`` for the format. Which
mapping applies is decided by the model alone: the stdlib family its blocks come from.
No framework is imported here.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import ir
from .errors import ArchcError, Loc

STDLIB_DIR = Path(__file__).parent / "stdlib"
STDLIB_PREFIX = "<archc stdlib>/"
SOURCES = ("torchvision", "keras.applications")
# where each source's mapping files are, under archc/stdlib/
FOLDERS = {"torchvision": "torchvision", "keras.applications": "keras_applications"}
BY_ORDER = "#"  # a rule's result ending in this: matched by order among the source's auto-named layers

_EXPR = re.compile(r"\{([^{}]*)\}")
_GROUP = re.compile(r"\\(\d)")


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    to: str
    where: str  # "file, rule N" for messages

    def apply(self, key: str) -> str | None:
        """``key`` rewritten, or None where the rule does not match."""
        m = self.pattern.search(key)
        if m is None:
            return None
        return key[: m.start()] + _expand(self.to, m, self.where) + key[m.end() :]


def _expand(template: str, m: re.Match, where: str) -> str:
    def group(g: re.Match) -> str:
        i = int(g.group(1))
        if i > (m.re.groups or 0):
            raise ArchcError(f"{where}: '\\{i}' but the pattern has {m.re.groups} groups", None)
        return m.group(i) or ""

    def arith(e: re.Match) -> str:
        text = _GROUP.sub(group, e.group(1))
        return str(_int_eval(text, where))

    return _GROUP.sub(group, _EXPR.sub(arith, template))


def _int_eval(text: str, where: str) -> int:
    """Integer arithmetic only (+ - * and integers): the data must not run code."""

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult)):
            a, b = ev(n.left), ev(n.right)
            return a + b if isinstance(n.op, ast.Add) else a - b if isinstance(n.op, ast.Sub) else a * b
        raise ValueError

    try:
        return ev(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError):
        raise ArchcError(f"{where}: '{{{text}}}' is not integer arithmetic (+ - * on integers and \\N)", None) from None


@dataclass(frozen=True)
class Mapping:
    source: str  # "torchvision"
    family: str  # stdlib stem, e.g. "resnet"
    file: str  # shown in messages
    models: tuple[str, ...]
    rules: tuple[Rule, ...]
    checkpoint_rules: tuple[Rule, ...]
    specs: tuple[str, ...] = ()  # archc specs the mapping is checked for
    builder: dict | None = None  # keras.applications: {call: NAME or {spec: NAME}, args: {arg: value or "$param"}}
    ignore: tuple[str, ...] = ()  # source layers that are not part of the network (preprocessing)
    covers: tuple[str, ...] = ()  # other families whose blocks its models use (segmentation: resnet's)

    def names(self, keys) -> dict[str, str]:
        """Generated state_dict key -> the source framework's key, for every key; one-to-one."""
        out: dict[str, str] = {}
        back: dict[str, str] = {}
        for key in keys:
            cur, hit = key, False
            for r in self.rules:
                new = r.apply(cur)
                if new is not None:
                    cur, hit = new, True
            if not hit:
                raise ArchcError(f"{self.source} mapping has no rule for '{key}'", Loc(self.file, 1, 1))
            if cur in back and not cur.endswith(BY_ORDER):
                raise ArchcError(
                    f"{self.source} mapping sends both '{back[cur]}' and '{key}' to '{cur}'", Loc(self.file, 1, 1)
                )
            out[key], back[cur] = cur, key
        return out

    def checkpoint_names(self, keys) -> dict[str, str]:
        """A checkpoint's key -> the name the rules produce (older spellings rewritten)."""
        out = {}
        for key in keys:
            cur = key
            for r in self.checkpoint_rules:
                new = r.apply(cur)
                if new is not None:
                    cur = new
            out[key] = cur
        return out


def _rules(raw, file: str, what: str) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ArchcError(f"'{what}' must be a list of {{from: REGEX, to: TEMPLATE}}", Loc(file, 1, 1))
    out = []
    for i, r in enumerate(raw, 1):
        where = f"{file}: {what} {i}"
        if not isinstance(r, dict) or set(r) != {"from", "to"} or not all(isinstance(v, str) for v in r.values()):
            raise ArchcError(f"{where}: must be {{from: REGEX, to: TEMPLATE}}, got {r!r}", None)
        try:
            pattern = re.compile(r["from"])
        except re.error as exc:
            raise ArchcError(f"{where}: bad regex {r['from']!r}: {exc}", None) from None
        out.append(Rule(pattern, r["to"], where))
    return tuple(out)


def _names(raw, file: str, what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ArchcError(f"'{what}' must be a list of names", Loc(file, 1, 1))
    return tuple(raw)


def _builder(raw, file: str) -> dict | None:
    if raw is None:
        return None
    args = raw.get("args", {}) if isinstance(raw, dict) else None
    call = raw.get("call") if isinstance(raw, dict) else None
    calls_ok = isinstance(call, str) or (
        isinstance(call, dict) and call and all(isinstance(k, str) and isinstance(v, str) for k, v in call.items())
    )
    if not calls_ok or not isinstance(args, dict):
        raise ArchcError(
            "'builder' must be {call: NAME or {SPEC: NAME, ...}, args: {ARG: VALUE or '$param'}}", Loc(file, 1, 1)
        )
    if set(raw) - {"call", "args"}:
        raise ArchcError(f"'builder' has unknown keys {sorted(set(raw) - {'call', 'args'})}", Loc(file, 1, 1))
    return {"call": raw["call"], "args": dict(args)}


def load_mapping(path: Path, source: str = "torchvision") -> Mapping:
    file = f"{STDLIB_PREFIX}{path.parent.name}/{path.name}"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    body = raw.get(source)
    if not isinstance(body, dict):
        raise ArchcError(f"no '{source}:' section", Loc(file, 1, 1))
    return Mapping(
        source=source,
        family=path.stem,
        file=file,
        models=tuple(body.get("models") or ()),
        rules=_rules(body.get("rules"), file, "rule"),
        checkpoint_rules=_rules(body.get("checkpoint_rules"), file, "checkpoint rule"),
        specs=_names(body.get("specs"), file, "specs"),
        builder=_builder(body.get("builder"), file),
        ignore=_names(body.get("ignore"), file, "ignore"),
        covers=_names(body.get("covers"), file, "covers"),
    )


def families(model: ir.Model) -> list[str]:
    """The stdlib families (file stems) whose blocks ``model`` uses."""
    stems = {
        b.loc.file[len(STDLIB_PREFIX) :].removesuffix(".yaml")
        for b in model.blocks
        if b.loc is not None and b.loc.file.startswith(STDLIB_PREFIX)
    }
    return sorted(stems)


def mapping_for(model: ir.Model, source: str = "torchvision") -> Mapping:
    """The mapping of the one family of ``model`` that has a ``source`` mapping; refused otherwise."""
    if source not in SOURCES:
        raise ArchcError(f"unknown checkpoint source '{source}' (known: {', '.join(SOURCES)})", None)
    fams = families(model)
    folder = STDLIB_DIR / FOLDERS[source]
    have = sorted(p.stem for p in folder.glob("*.yaml"))
    found = [f for f in fams if f in have]
    covered = {c for f in found for c in load_mapping(folder / f"{f}.yaml", source).covers}
    found = [f for f in found if f not in covered]  # a family whose models embed another's names it too
    where = Loc(model.spec_file, 1, 1)
    if not found:
        used = ", ".join(fams) if fams else "none"
        raise ArchcError(
            f"spec '{model.name}' uses no archc family with {source} names (families used: {used}; "
            f"with {source} names: {', '.join(have)})",
            where,
        )
    if len(found) > 1:
        raise ArchcError(
            f"spec '{model.name}' uses several families with {source} names ({', '.join(found)}): "
            "which names a checkpoint has is ambiguous",
            where,
        )
    return load_mapping(folder / f"{found[0]}.yaml", source)
