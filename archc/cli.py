"""Command line: ``archc check | summary | schema | build | diagram | report | ...``.

Bad input is reported as ``file:line:col: message`` with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ArchcError, InternalError

SPEC_HELP = "a spec file, or the name of a spec of the zoo (`archc list`); an existing file wins over a name"


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def cmd_check(args) -> int:
    from .analysis import analyze
    from .catalog import resolve
    from .pipeline import check_spec

    failed = 0
    for arg in args.specs:  # report every spec, not just the first bad one
        try:
            path = resolve(arg)
            model, warnings = check_spec(path, args.set)
            r = analyze(model)
        except ArchcError as exc:
            print(f"{exc}", file=sys.stderr)
            failed += 1
            continue
        for w in warnings:
            print(f"{w}", file=sys.stderr)
        if warnings and args.strict:
            n = len(warnings)
            print(f"{arg}: {n} warning{'s' if n > 1 else ''}, errors with --strict", file=sys.stderr)
            failed += 1
            continue
        print(f"{arg}: ok ({r.name}: {r.trainable:,} trainable + {r.non_trainable:,} non-trainable params)")
    return 2 if failed else 0


def cmd_summary(args) -> int:
    from .analysis import analyze, collapse
    from .pipeline import compile_spec

    model = compile_spec(args.spec, args.set)
    report = analyze(model)
    if args.json:  # every layer, whatever the depth; each with its depth
        print(json.dumps(report.to_json(), indent=None if args.compact else 2))
        return 0
    rows = [("layer", "kind", "output shape", "params", "non-trainable", "MACs")]
    for r in collapse(model, report, args.depth):
        rows.append(
            (r.path, r.kind, _fmt_shape(r.out_shape), f"{r.trainable:,}", f"{r.non_trainable:,}", f"{r.macs:,}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2])]
        cells += [c.rjust(w) for c, w in zip(row[3:], widths[3:])]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("-" * len(out[0]))
    out.append("-" * len(out[0]))
    axes = {2: "L, C", 3: "H, W, C", 4: "D, H, W, C"}[len(report.input_shape)]
    out.append(f"model: {report.name}   input: {'x'.join(map(str, report.input_shape))} ({axes})")
    for name, shape in report.outputs.items():
        out.append(f"output {name}: {_fmt_shape(shape)}   loss weight {report.loss_weights[name]:g}")
    out.append(f"trainable params:     {report.trainable:>14,}")
    out.append(f"non-trainable params: {report.non_trainable:>14,}")
    out.append(f"total params:         {report.total:>14,}")
    out.append(f"MACs:                 {report.macs:>14,}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _depth(text: str):
    """``--depth N`` (N >= 1) or ``--depth all``."""
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got '{text}'")
    return n


def _version() -> str:
    """The installed package's version; the source tree's when it is not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("archc")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        from . import __version__

        return __version__


def _is_zoo_name(arg: str) -> bool:
    from .catalog import zoo_path

    return zoo_path(arg) is not None


class _SetAction(argparse.Action):
    """``--set a=1 b=2`` (several pairs after one flag) and repeated ``--set``: one flat list of pairs."""

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = list(getattr(namespace, self.dest, None) or [])
        for v in values:
            if "=" not in v and (v.endswith((".yaml", ".yml")) or _is_zoo_name(v)):  # a spec written after the pairs
                parser.error(
                    f"--set takes KEY=VALUE pairs; '{v}' has no '=' (put specs before --set, or end the pairs with --)"
                )
            pairs.append(v)
        setattr(namespace, self.dest, pairs)


def cmd_schema(args) -> int:
    from .spec import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_build(args) -> int:
    from .build import build

    unchanged: list[str] = []
    stale = build(args.specs, args.backend, args.output, args.check, args.set, args.option, unchanged)
    if args.check:
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        print(f"wrote {path}")
    for path in unchanged:
        print(f"unchanged {path}")
    return 0


def cmd_list(args) -> int:
    from .catalog import zoo_table

    rows, errors = zoo_table()
    for e in errors:
        print(e, file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 2 if errors else 0
    table = [("name", "input", "trainable", "non-trainable", "MACs", "")]
    for r in rows:
        size = "x".join(map(str, r["input"]))  # (*spatial, C)
        macs = f"{r['macs'] / 1e9:.3f} G" if r["macs"] >= 1e8 else f"{r['macs'] / 1e6:.1f} M"
        table.append((r["name"], size, f"{r['trainable_params']:,}", f"{r['non_trainable_params']:,}", macs, r["doc"]))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1])] + [c.rjust(w) for c, w in zip(row[2:5], widths[2:])]
        print("  ".join([*cells, row[5]]).rstrip())
    print(f"{len(rows)} specs; build one with `archc build NAME --backend torch`, or load it with archc.create_model")
    return 2 if errors else 0


def cmd_convert(args) -> int:
    from .convert import convert_weights

    print(convert_weights(args.spec, args.src, args.dst, args.set, args.source))
    return 0


def cmd_fold(args) -> int:
    from .export import export_folded

    print(export_folded(args.spec, args.src, args.dst, args.set, args.format, args.fixed_size))
    return 0


def _write_output(out: str | None, default: str, data: bytes) -> None:
    """Write ``data`` to ``out`` (``-`` is stdout) atomically, and say where."""
    from pathlib import Path

    from .diagram import atomic_write_bytes

    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    path = Path(out or default)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ArchcError(f"cannot write {path}: {exc.strerror or exc}", None) from None
    print(f"wrote {path}")


def cmd_diagram(args) -> int:
    from pathlib import Path

    from .diagram import drawing, format_for, parse_depth
    from .pipeline import compile_spec

    fmt = format_for(args.output, args.format)
    depth = parse_depth(args.depth)
    model = compile_spec(args.spec, args.set)
    data = drawing(model, depth, fmt)
    _write_output(args.output, f"{Path(args.spec).stem}.{fmt}", data)
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from .diagram import parse_depth
    from .pipeline import compile_spec
    from .report import report_html

    depth = parse_depth(args.depth)
    model = compile_spec(args.spec, args.set)
    html = report_html(model, depth)
    _write_output(args.output, f"{Path(args.spec).stem}.html", html.encode("utf-8"))
    return 0


def _backend_help() -> str:
    from .backends import list_backends

    return f"backend: {', '.join(list_backends())}, or all"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archc", description="Compile CNN architectures written in YAML.")
    p.add_argument("--version", action="version", version=f"archc {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def add_set(sp):
        sp.add_argument(
            "--set",
            action=_SetAction,
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="override a param (growth_rate=48) or any dotted path (input.height=96); several pairs "
            "after one --set (--set a=1 b=2), and repeatable",
        )

    sp = sub.add_parser("check", help="validate specs; lints are warnings")
    sp.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("--strict", action="store_true", help="lint warnings are errors (exit 2)")
    add_set(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("summary", help="per-layer output shapes, params and MACs")
    sp.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.add_argument("--compact", action="store_true", help="with --json: no indentation")
    sp.add_argument(
        "--depth",
        type=_depth,
        default=1,
        metavar="N|all",
        help="levels of names shown (default 1: top-level items, blocks summed); 'all': every layer. "
        "--json always lists every layer",
    )
    add_set(sp)
    sp.set_defaults(func=cmd_summary)

    sp = sub.add_parser("build", help="emit framework code for specs")
    sp.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("--backend", "-b", required=True, help=_backend_help())
    sp.add_argument("-o", "--output", help="output file (one spec) or folder; default generated/<backend>/<spec>.py")
    sp.add_argument("--check", action="store_true", help="write nothing; exit 1 if any output differs")
    sp.add_argument(
        "--option",
        "-O",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="backend build option, e.g. memory_efficient (torch: checkpoint dense layers in training)",
    )
    add_set(sp)
    sp.set_defaults(func=cmd_build)

    sp = sub.add_parser(
        "convert-weights", help="PyTorch state_dict (.pt/.pth) <-> Keras weights (.weights.h5), through the IR"
    )
    sp.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("src", metavar="SRC")
    sp.add_argument("dst", metavar="DST")
    sp.add_argument(
        "--from",
        dest="source",
        choices=("archc", "torchvision", "keras.applications"),
        default="archc",
        help="SRC's names: archc (default: a generated model's), torchvision (its state_dict) or keras.applications "
        "(its .weights.h5 or legacy .h5 file), -> .pt or .weights.h5",
    )
    add_set(sp)
    sp.set_defaults(func=cmd_convert)

    sp = sub.add_parser("export-folded", help="PyTorch inference export: BN folded into convs, torch.export .pt2")
    sp.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("src", metavar="STATE_DICT.pt")
    sp.add_argument("dst", metavar="OUT.pt2")
    sp.add_argument(
        "--format",
        choices=["export", "torchscript"],
        default="export",
        help="export: torch.export program (default); torchscript: the deprecated TorchScript file",
    )
    sp.add_argument(
        "--fixed-size", action="store_true", help="export: height and width static (loads much faster); batch dynamic"
    )
    add_set(sp)
    sp.set_defaults(func=cmd_fold)

    sp = sub.add_parser("diagram", help="draw the network (Graphviz): svg, png, pdf or dot")
    sp.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("-o", "--output", help="output file, '-' for stdout; default <spec>.<format>")
    sp.add_argument(
        "--depth",
        default="1",
        metavar="N",
        help="1 (default): top-level items, each block one node; N: blocks opened N-1 levels; 'all': every layer",
    )
    sp.add_argument(
        "--format", "-f", choices=("svg", "png", "pdf", "dot"), help="default: from -o's extension, else svg"
    )
    add_set(sp)
    sp.set_defaults(func=cmd_diagram)

    sp = sub.add_parser("report", help="one self-contained HTML page: diagram, summary, charts, source")
    sp.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    sp.add_argument("-o", "--output", help="output file, '-' for stdout; default <spec>.html")
    sp.add_argument("--depth", default="1", metavar="N", help="depth of the diagram (as for diagram)")
    add_set(sp)
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("list", help="the zoo: the specs archc ships, by name, with their counts")
    sp.add_argument("--json", action="store_true", help="print one JSON list (exact counts, each spec's file)")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("schema", help="print the JSON Schema of the spec language")
    sp.set_defaults(func=cmd_schema)
    return p


def _resolve_names(args) -> None:
    """A SPEC argument is a path or a zoo name (an existing path wins); ``check`` resolves its own, one by one."""
    from .catalog import resolve

    if getattr(args, "spec", None) is not None:
        args.spec = resolve(args.spec)
    if args.func is cmd_build:
        args.specs = [resolve(s) for s in args.specs]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _resolve_names(args)
        return args.func(args)
    except InternalError as exc:  # archc's fault, not the spec's: its own status
        print(f"{exc}", file=sys.stderr)
        return 3
    except ArchcError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
