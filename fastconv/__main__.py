"""Command line: ``python -m fastconv <command>``.

    summary   print the camera classifier's per-layer summary
"""
import argparse
import sys


def _cmd_summary(args):
    from . import analysis, models
    model = models.camera_classifier(args.num_classes)
    print(analysis.summary(model, (args.batch, 3, args.image_size, args.image_size)))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastconv",
                                     description="fastconv: CNN building blocks for the CPU")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("summary", help="print the camera classifier's per-layer summary",
                       description="Per-layer output shapes, parameters, multiply-adds and "
                                   "receptive fields of the camera classifier.")
    p.add_argument("--image-size", type=int, default=64, help="input height and width (64)")
    p.add_argument("--batch", type=int, default=1, help="batch size (1)")
    p.add_argument("--num-classes", type=int, default=2, help="output classes (2)")
    p.set_defaults(func=_cmd_summary)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:      # bad arguments: one line, no traceback
        print(f"python -m fastconv {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
