"""The ``denoisenet`` command."""

import argparse
import sys

__all__ = ["main"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="denoisenet",
        description="Denoising auto-encoders and bottleneck classifiers for "
        "scikit-learn.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("study", help="run the whole study on one dataset")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print("denoisenet study is not available yet.", file=sys.stderr)
    return 2
