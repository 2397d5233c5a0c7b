"""Command line: ``archc check | summary | schema | build``.

Bad input is reported as ``file:line:col: message`` with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ArchcError


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def cmd_check(args) -> int:
    from .analysis import analyze
    from .pipeline import compile_spec

    failed = 0
    for path in args.specs:  # report every spec, not just the first bad one
        try:
            r = analyze(compile_spec(path, args.set))
        except ArchcError as exc:
            print(f"{exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: ok ({r.name}: {r.trainable:,} trainable + {r.non_trainable:,} non-trainable params)")
    return 2 if failed else 0


def cmd_summary(args) -> int:
    from .analysis import analyze
    from .pipeline import compile_spec

    model = compile_spec(args.spec, args.set)
    report = analyze(model)
    if args.json:
        print(json.dumps(report.to_json(), indent=None if args.compact else 2))
        return 0
    rows = [("layer", "kind", "output shape", "params", "non-trainable", "MACs")]
    for r in report.rows:
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
    h, w, c = report.input_shape
    out.append(f"model: {report.name}   input: {h}x{w}x{c} (H, W, C)")
    for name, shape in report.outputs.items():
        out.append(f"output {name}: {_fmt_shape(shape)}   loss weight {report.loss_weights[name]:g}")
    out.append(f"trainable params:     {report.trainable:>14,}")
    out.append(f"non-trainable params: {report.non_trainable:>14,}")
    out.append(f"total params:         {report.total:>14,}")
    out.append(f"MACs:                 {report.macs:>14,}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def cmd_schema(args) -> int:
    from .spec import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_build(args) -> int:
    from .build import build

    stale = build(args.specs, args.backend, args.output, args.check, args.set, args.option)
    if args.check:
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        print(f"wrote {path}")
    return 0


def cmd_convert(args) -> int:
    from .convert import convert_weights

    print(convert_weights(args.spec, args.src, args.dst, args.set))
    return 0


def cmd_fold(args) -> int:
    from .export import export_folded

    print(export_folded(args.spec, args.src, args.dst, args.set, args.format, args.fixed_size))
    return 0


def _backend_help() -> str:
    from .backends import list_backends

    return f"backend: {', '.join(list_backends())}, or all"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archc", description="Compile CNN architectures written in YAML.")
    sub = p.add_subparsers(dest="command", required=True)

    def add_set(sp):
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a param (growth_rate=48) or any dotted path (input.height=96); repeatable",
        )

    sp = sub.add_parser("check", help="validate specs")
    sp.add_argument("specs", nargs="+", metavar="SPEC")
    add_set(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("summary", help="per-layer output shapes, params and MACs")
    sp.add_argument("spec", metavar="SPEC")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.add_argument("--compact", action="store_true", help="with --json: no indentation")
    add_set(sp)
    sp.set_defaults(func=cmd_summary)

    sp = sub.add_parser("build", help="emit framework code for specs")
    sp.add_argument("specs", nargs="+", metavar="SPEC")
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
    sp.add_argument("spec", metavar="SPEC")
    sp.add_argument("src", metavar="SRC")
    sp.add_argument("dst", metavar="DST")
    add_set(sp)
    sp.set_defaults(func=cmd_convert)

    sp = sub.add_parser("export-folded", help="PyTorch inference export: BN folded into convs, torch.export .pt2")
    sp.add_argument("spec", metavar="SPEC")
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

    sp = sub.add_parser("schema", help="print the JSON Schema of the spec language")
    sp.set_defaults(func=cmd_schema)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArchcError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
