"""A structure-aware, seeded mutation fuzzer over specs/*.yaml and archc/stdlib/*.yaml (issue 24).

Each case takes a spec from specs/ (``extends:`` pointed at the original file), optionally splices in a renamed
copy of a standard-library block with a call to it, applies 1-4 mutations to the YAML tree (scalars replaced
from a pool of edge values, hostile expressions and docs, items deleted, duplicated, swapped, wrapped in
``repeat`` / ``residual`` / ``seq`` several levels deep, kinds and keys renamed, subtrees spliced from other
seeds, blocks renamed) and sometimes one to the YAML text (tags such as ``!!bool maybe``, a truncation, a line
dropped or repeated, an anchor and alias). Then, in this process, ``archc check`` and ``archc build`` with both
backends, and the invariants:

- every command exits 0, or 2 with a first line ``file:line:col: ``; never a traceback, never exit 1 or 3;
- a case takes at most ``CASE_CPU_SECONDS`` of CPU (a timer turns a hang into a defect) and grows the peak memory of
  this process and its children by at most ``MAX_RSS_GROWTH_MB``;
- nothing from the input runs: a canary file that hostile inputs would create stays absent;
- a build that fails leaves the output file that was there untouched (bytes and mtime);
- a build's output compiles (``compile()``; nothing generated is executed);
- ``check`` accepting implies both builds succeed, except the known defects listed in ``KNOWN_DEFECTS``.

Run from the tests (``tests/test_fuzz.py``: a few hundred cases) or for a long run::

    ARCHC_FUZZ_CASES=10000 nice .venv/bin/python -m tests.fuzz [--seed N] [--json FIGURES.json]

which prints the figures: cases, outcome classes, time distribution, the slowest cases and every defect with
the seed that reproduces it (``python -m tests.fuzz --case SEED`` prints that case's spec).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
STDLIB = sorted((ROOT / "archc" / "stdlib").glob("*.yaml"))
# A case (check and two builds) is a hang past CASE_CPU_SECONDS of this process's CPU time (load-independent: the
# costliest cases seen, seeds raised to the 100,000-instance bound such as depth_mult: 240, take ~8 s of CPU and
# took 28 s of wall time on a loaded machine) or CASE_WALL_SECONDS of wall time (a wait that uses no CPU).
CASE_CPU_SECONDS = 30
CASE_WALL_SECONDS = 300
MAX_RSS_GROWTH_MB = 1024  # peak memory a case may add (the largest seeds build in < 300 MB)
LOCATED = re.compile(r"^[^\n]*?:\d+:\d+: ")

# Known defects, excluded by their exact backend message: valid specs that pass `check` and that a build refuses,
# while the core is being fixed for them. None stand: the last (the PyTorch emitter could not write a block class's
# running width through a chain of conditional parts; `python -m tests.fuzz --case 7001086`) is built since, and any
# such case counts as a defect again. Add an entry only with an issue that fixes it.
KNOWN_DEFECTS: dict[str, str] = {}
WIDTH_CHAIN = (  # the last known defect's minimal spec: check accepts it, and both backends build it now
    "name: chain\ninput: {height: 8, width: 8, channels: 1}\nblocks:\n"
    "  inv:\n    params: {out: null}\n    body:\n"
    "    - add: {if: '${in_channels == out}', branches: [[conv: {out: $out, kernel: 1}], []]}\n"
    "    - seq: {if: '${in_channels != out}', body: [conv: {out: $out, kernel: 1}]}\n"
    "  outer:\n    params: {width: null}\n    body:\n"
    "    - conv: {if: '${in_channels != width}', out: $width, kernel: 1}\n"
    "    - concat: [[inv: {out: 1}], []]\n"
    "network: [outer: {width: 1}]\n"
)

CANARY = "ARCHC_FUZZ_CANARY"  # the file a hostile input's payload would create (in the case's folder)

KINDS = ["conv", "dwconv", "bn", "relu", "relu6", "maxpool", "avgpool", "gap", "dropout", "flatten", "dense"]
KINDS += ["zeropad", "hardswish", "gelu", "layernorm", "groupnorm", "slice", "adaptive_avgpool", "softmax"]
KINDS += ["seq", "concat", "add", "mul", "repeat", "residual", "dense_connect", "reshape", "depth", "Conv"]
KEYS = ["out", "kernel", "stride", "padding", "bias", "name", "if", "groups", "dilation", "rate", "ceil", "times"]
KEYS += ["body", "shortcut", "layers", "count_include_pad", "eps", "momentum", "doc", "params", "kernal", "widht"]
DOCS = ["\r\n", " ", "\x0b", "\u2028", "\x85", 'ends in """', 'a"', '""""', "back\\", "\x1b[31m", "", "\t"]
EXPRS = [
    "${round(1, -10**8)}",
    "${round(2.5)}",
    "${9 ** 9 ** 9}",
    "${10 ** 13 * 10 ** 13}",
    "${in_channels * 2}",
    "${in_channels // 0}",
    "${len('%0999999999d' % 1)}",
    "${int((-8) ** 0.5)}",
    "${__import__('os').system('touch " + CANARY + "')}",
    "${().__class__}",
    "${open('" + CANARY + "', 'w')}",
    "${[1, 2][5]}",
    "${'a' + 1}",
    "${min()}",
    "${max([])}",
    "${1 if in_channels > 3 else 2}",
    "$nope",
    "${",
    "$",
]
SCALARS = [0, 1, -1, 2, 3, 7, 1 << 40, 1 << 62, 0.5, -0.0, 1e308, float("nan"), float("inf"), True, False, None]
SCALARS += ["same", "valid", "", "x" * 300, "conv", "input", "main", "class", "def", "__init__", "a.b", "é", [], {}]
SCALARS += [[1, 2], [3, 3, 3], [0, 0, 0, 0], [1, 2, 3, 4, 5], {"a": 1}]
TEXT_MUTATIONS = ["!!bool maybe", "!!int 0xZZ", "!!float abc"]
TEXT_MUTATIONS += ["!!python/object/apply:os.system ['touch " + CANARY + "']"]
TEXT_MUTATIONS += ["!!binary AAAA", "!!timestamp 2001-13-45", "!!set {a, b}", "!!omap [a: 1]", "!!str", "&a x", "*zz"]


def load_seeds() -> tuple[list[tuple[Path, dict]], list[tuple[str, dict]]]:
    """(spec path, data) for every spec; (block name, definition) for every standard-library block."""
    specs = [(p, yaml.safe_load(p.read_text(encoding="utf-8"))) for p in SPECS]
    blocks = []
    for p in STDLIB:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        blocks.extend((name, b) for name, b in (data.get("blocks") or {}).items())
    return specs, blocks


def _containers(node, out, parent=None, key=None):
    """Every (container, key) in a tree, so that a mutation can replace ``container[key]``."""
    if parent is not None:
        out.append((parent, key))
    if isinstance(node, dict):
        for k in list(node):
            _containers(node[k], out, node, k)
    elif isinstance(node, list):
        for i in range(len(node)):
            _containers(node[i], out, node, i)
    return out


def _items(data) -> list[tuple[list, int]]:
    """Every (list, index) of a list whose elements look like items (a kind name or a one-key mapping)."""
    out = []
    for container, key in _containers(data, []):
        v = container[key]
        if isinstance(v, list) and v and all(isinstance(x, str) or (isinstance(x, dict) and len(x) == 1) for x in v):
            out.extend((v, i) for i in range(len(v)))
    return out


def _pick(rng: random.Random, pool):
    return copy.deepcopy(rng.choice(pool))


def mutate_tree(rng: random.Random, data: dict, specs, blocks) -> str:
    """One mutation of ``data`` in place; returns its name (for the figures)."""
    nodes = _containers(data, [])
    items = _items(data)
    op = rng.choice(
        ["scalar", "scalar", "expr", "doc", "delete", "duplicate", "swap", "wrap", "wrap_deep", "kind", "key"]
        + ["splice", "repeat_many", "rename_block"]
    )
    if op in ("scalar", "expr", "doc") and nodes:
        container, key = rng.choice(nodes)
        if op == "doc":
            blocks = data.get("blocks")  # (a mutation may have left it empty: `blocks: {}`)
            target = data if rng.random() < 0.5 or not isinstance(blocks, dict) or not blocks else None
            if target is None:
                target = data["blocks"][rng.choice(list(data["blocks"]))]
                if not isinstance(target, dict):
                    return "doc"
            target["doc"] = rng.choice(DOCS) + (rng.choice(DOCS) if rng.random() < 0.3 else "")
        else:
            container[key] = _pick(rng, SCALARS if op == "scalar" else EXPRS)
        return op
    if op == "delete" and nodes:
        container, key = rng.choice(nodes)
        del container[key]
        return op
    if op in ("duplicate", "repeat_many") and items:
        lst, i = rng.choice(items)
        n = 1 if op == "duplicate" else rng.choice([10, 100, 1000])
        lst[i + 1 : i + 1] = [copy.deepcopy(lst[i]) for _ in range(n)]
        return op
    if op == "swap" and items:
        lst, i = rng.choice(items)
        j = rng.randrange(len(lst))
        lst[i], lst[j] = lst[j], lst[i]
        return op
    if op in ("wrap", "wrap_deep") and items:
        lst, i = rng.choice(items)
        item = lst[i]
        for _ in range(1 if op == "wrap" else rng.choice([3, 8, 9, 12, 25])):
            how = rng.choice(["repeat", "residual", "seq"])
            if how == "repeat":
                item = {"repeat": {"times": rng.choice([1, 2, 3]), "body": [item]}}
            elif how == "residual":
                item = {"residual": {"body": [item]}}
            else:
                item = {"seq": [item]}
        lst[i] = item
        return op
    if op == "kind" and items:
        lst, i = rng.choice(items)
        v = lst[i]
        kind = rng.choice(KINDS + [b for b, _ in blocks])
        lst[i] = {kind: next(iter(v.values()))} if isinstance(v, dict) else kind
        return op
    if op == "key":
        maps = [(c, k) for c, k in nodes if isinstance(c[k], dict) and c[k]]
        if maps:
            container, key = rng.choice(maps)
            m = container[key]
            old = rng.choice(list(m))
            new = rng.choice(KEYS)
            if new not in m:
                m[new] = m.pop(old)
            return op
    if op == "splice" and nodes:
        _, other = rng.choice(specs)
        donors = _containers(other, [])
        if donors:
            c, k = rng.choice(donors)
            container, key = rng.choice(nodes)
            container[key] = copy.deepcopy(c[k])
        return op
    if op == "rename_block" and isinstance(data.get("blocks"), dict) and data["blocks"]:
        old = rng.choice(list(data["blocks"]))
        data["blocks"][rng.choice(["input", "conv", old + "_x", "class", "x" * 60])] = data["blocks"].pop(old)
        return op
    return "none"


def splice_stdlib_block(rng: random.Random, data: dict, blocks) -> str:
    """Copies a standard-library block into the spec's ``blocks:`` under a new name and calls it in the network,
    its required params given small values: the stdlib's definitions become mutation material too."""
    name, definition = rng.choice(blocks)
    new = f"fz_{name}"
    if not isinstance(data.get("blocks"), dict):
        data["blocks"] = {}
    data["blocks"][new] = copy.deepcopy(definition)
    params = (definition or {}).get("params") or {}
    args = {p: rng.choice([1, 2, 4, 8, 16]) for p, d in params.items() if d is None}
    net = data.get("network")
    if isinstance(net, list):
        net.insert(rng.randrange(len(net) + 1), {new: args} if args else new)
    return f"stdlib:{name}"


def mutate_text(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    op = rng.randrange(5)
    if op == 0 and lines:  # a tag (or an anchor / alias) in front of a scalar value
        i = rng.randrange(len(lines))
        lines[i] = re.sub(r": (\S)", lambda m: f": {rng.choice(TEXT_MUTATIONS)} {m.group(1)}", lines[i], count=1)
    elif op == 1:
        return text[: rng.randrange(len(text) + 1)]
    elif op == 2 and lines:
        del lines[rng.randrange(len(lines))]
    elif op == 3 and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif op == 4:
        lines.append(rng.choice(["---\n", "%YAML 1.1\n", "\t- relu\n", "network: [relu]\n", "x: *nope\n"]))
    return "".join(lines)


def make_case(seed: int, specs, blocks) -> tuple[str, list[str]]:
    """The spec text of case ``seed`` and the mutations applied (deterministic in ``seed``)."""
    rng = random.Random(seed)
    path, data = rng.choice(specs)
    data = copy.deepcopy(data)
    if isinstance(data.get("extends"), str):
        data["extends"] = str((path.parent / data["extends"]).resolve())
    ops = []
    if rng.random() < 0.3:
        ops.append(splice_stdlib_block(rng, data, blocks))
    for _ in range(rng.choice([1, 1, 2, 3, 4])):
        ops.append(mutate_tree(rng, data, specs, blocks))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=rng.random() < 0.5, width=100)
    if rng.random() < 0.15:
        text = mutate_text(rng, text)
        ops.append("text")
    return text, ops


@dataclass
class Outcome:
    seed: int
    cls: str  # built | refused | known:<name> | defect:<what>
    seconds: float
    ops: list[str]
    detail: str = ""
    first_line: str = ""


@dataclass
class Figures:
    outcomes: list[Outcome] = field(default_factory=list)

    def classes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.cls] = out.get(o.cls, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def defects(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.cls.startswith("defect")]

    def summary(self) -> dict:
        times = sorted(o.seconds for o in self.outcomes)

        def q(p):
            return round(times[min(len(times) - 1, int(p * len(times)))], 3) if times else 0.0

        causes: dict[str, int] = {}
        for o in self.outcomes:
            if o.cls == "refused":
                msg = re.sub(r"'[^']*'|\d+", "_", LOCATED.sub("", o.first_line))[:60]
                causes[msg] = causes.get(msg, 0) + 1
        top = dict(sorted(causes.items(), key=lambda kv: -kv[1])[:15])
        slow = sorted(self.outcomes, key=lambda o: -o.seconds)[:5]
        return {
            "cases": len(self.outcomes),
            "classes": self.classes(),
            "seconds": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0), "total": round(sum(times), 1)},
            "slowest": [(o.seed, round(o.seconds, 2), o.cls, o.ops) for o in slow],
            "top_refusals": top,
            "defects": [(o.seed, o.cls, o.ops, o.detail[:300]) for o in self.defects()],
        }


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _run(argv) -> tuple[int, str, str]:
    from archc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except _Timeout:
            raise
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is the defect being looked for
            return 99, out.getvalue(), err.getvalue() + f"\nescaped: {type(exc).__name__}: {exc}"
    return code, out.getvalue(), err.getvalue()


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def _bad_exit(code: int, err: str) -> str | None:
    """Why an exit breaks the invariants, or None."""
    if "Traceback" in err:
        return "traceback"
    if code == 0:
        return None
    if code == 2:
        return None if LOCATED.match(err) else "unlocated"
    return f"exit {code}"


def run_case(seed: int, specs, blocks, work: Path) -> Outcome:
    text, ops = make_case(seed, specs, blocks)
    case = work / f"case{seed}"
    case.mkdir()
    spec = case / "fz.yaml"
    spec.write_text(text, encoding="utf-8")
    outs = {b: case / f"{b}.py" for b in ("torch", "keras")}
    sentinel = "# an earlier build's output: a failed build must leave it\n"
    for p in outs.values():
        p.write_text(sentinel, encoding="utf-8")
        os.utime(p, (1_000_000_000, 1_000_000_000))
    peak0 = _peak_mb()
    t = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm), signal.signal(signal.SIGPROF, _alarm)
    signal.alarm(CASE_WALL_SECONDS)
    signal.setitimer(signal.ITIMER_PROF, CASE_CPU_SECONDS)
    cwd = os.getcwd()
    try:
        os.chdir(case)  # a payload writing a relative path would write here, where the canary is looked for
        code, _, err = _run(["check", spec])
        results = {"check": (code, err)}
        # a refused spec: one build (alternating backends) must refuse it too, located, writing nothing
        for b in ("torch", "keras") if code == 0 else (("torch", "keras")[seed % 2],):
            results[b] = _run(["build", spec, "--backend", b, "-o", outs[b]])[0::2]
    except _Timeout:
        limits = f"over {CASE_CPU_SECONDS} s of CPU or {CASE_WALL_SECONDS} s"
        return Outcome(seed, "defect:hang", time.perf_counter() - t, ops, f"{limits}\n{text[:2000]}")
    finally:
        signal.alarm(0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGALRM, old[0])
        signal.signal(signal.SIGPROF, old[1])
        os.chdir(cwd)
    seconds = time.perf_counter() - t
    o = Outcome(seed, "refused" if code == 2 else "built", seconds, ops, first_line=err.split("\n", 1)[0])
    growth = _peak_mb() - peak0
    problems = []
    if growth > MAX_RSS_GROWTH_MB:
        problems.append(f"memory: peak grew {growth:.0f} MB")
    if (case / CANARY).exists() or Path(cwd, CANARY).exists():
        problems.append("executed: the canary file exists")
    for what, (c, e) in results.items():
        bad = _bad_exit(c, e)
        if bad:
            problems.append(f"{what}: {bad}: {e.strip()[:500]}")
    for b, p in outs.items():
        if b in results and results[b][0] != 0:
            if p.read_text(encoding="utf-8") != sentinel or p.stat().st_mtime != 1_000_000_000:
                problems.append(f"{b}: a failed build changed the existing output")
        elif b in results:
            try:
                compile(p.read_text(encoding="utf-8"), str(p), "exec")
            except SyntaxError as exc:
                problems.append(f"{b}: output does not compile: {exc}")
    if code == 0 and not problems:
        refusals = {b: results[b][1] for b in ("torch", "keras") if results[b][0] != 0}
        for b, e in refusals.items():
            known = [k for k, msg in KNOWN_DEFECTS.items() if msg in e]
            if known:
                o.cls = f"known:{known[0]}"
            else:
                problems.append(f"check accepted, the {b} build refused: {e.strip()[:500]}")
    if problems:
        kind = problems[0].split(":", 1)[0] if not problems[0].startswith(("torch", "keras", "check")) else "exit"
        if "check accepted" in problems[0]:
            kind = "check-accepts-build-refuses"
        o.cls = f"defect:{kind}"
        o.detail = "\n".join(problems) + "\n--- spec ---\n" + text[:3000]
    return o


def fuzz(cases: int, seed: int = 0, work: Path | None = None, progress=None, start: int = 0) -> Figures:
    """Cases ``start`` to ``cases - 1`` of ``seed`` (``start``: to finish a long run that stopped part-way);
    ``progress(figures)`` is called every 100 cases (a long run's interim)."""
    specs, blocks = load_seeds()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="archc-fuzz-") as tmp:
        base = Path(work or tmp)
        for i in range(start, cases):
            o = run_case(seed * 1_000_003 + i, specs, blocks, base)
            figures.outcomes.append(o)
            if progress and (i + 1) % 100 == 0:
                progress(figures)
            if not o.cls.startswith("defect"):  # keep the folder of a defect only
                import shutil

                shutil.rmtree(base / f"case{o.seed}", ignore_errors=True)
    return figures


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=int(os.environ.get("ARCHC_FUZZ_SEED", "0")))
    ap.add_argument("--cases", type=int, default=int(os.environ.get("ARCHC_FUZZ_CASES", "300")))
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--start", type=int, default=0, help="the first case to run (the rest of a run that stopped)")
    ap.add_argument("--case", type=int, help="print the spec of one case (its seed) and exit")
    args = ap.parse_args(argv)
    if args.case is not None:
        specs, blocks = load_seeds()
        print(make_case(args.case, specs, blocks)[0])
        return 0
    t = time.perf_counter()

    def report(figures: Figures) -> str:
        s = figures.summary()
        s["wall_seconds"] = round(time.perf_counter() - t, 1)
        cpu = os.times()
        s["cpu_seconds"] = {"archc": round(cpu.user + cpu.system, 1), "ruff": round(cpu.children_user, 1)}
        text = json.dumps(s, indent=1, default=str)
        if args.json:
            Path(args.json).write_text(text, encoding="utf-8")
        return text

    figures = fuzz(args.cases, args.seed, progress=report, start=args.start)
    print(report(figures))
    return 1 if figures.defects() else 0


if __name__ == "__main__":
    sys.exit(main())
