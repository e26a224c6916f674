"""The ``denoisenet`` command.

``denoisenet study`` runs the whole study on one data set and writes a
report (Markdown and self-contained HTML), ``results.json`` and the figures
into one folder. Problems a user can fix (missing data, no network, an
unwritable folder, bad option values) end with one line on stderr and a
non-zero exit status, never a traceback.
"""

import argparse
import math
import sys

from denoisenet import __version__

__all__ = ["main"]

DATASETS = ("digits", "mnist", "fashion-mnist")


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _positive_int(text):
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text):
    value = _integer(text)
    # The range that numpy's RandomState, and so scikit-learn, accepts.
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in 0 to 2**32 - 1, got {value}")
    return value


def _noise_std(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _add_study_parser(sub):
    study = sub.add_parser(
        "study",
        help="run the whole study on one dataset and write a report",
        description="Baselines, noise and denoising, and 2-D maps on one "
        "dataset; writes report.md, report.html, results.json and PNG "
        "figures into --out.",
    )
    study.add_argument(
        "--dataset",
        choices=DATASETS,
        default="digits",
        help="digits (scikit-learn's 8x8 digits, no download), mnist or "
        "fashion-mnist (default: %(default)s)",
    )
    study.add_argument(
        "--data-home",
        metavar="DIR",
        help="folder with the IDX files of mnist or fashion-mnist, also the "
        "OpenML download cache (default: Debian's Fashion-MNIST folder, then "
        "OpenML's default cache)",
    )
    study.add_argument(
        "--noise-std",
        type=_noise_std,
        default=0.3,
        metavar="S",
        help="standard deviation of the Gaussian pixel noise, pixels in [0, 1] "
        "(default: %(default)s)",
    )
    study.add_argument(
        "--n-train",
        type=_positive_int,
        metavar="N",
        help="train on a stratified sample of N training images (default: all)",
    )
    study.add_argument(
        "--max-iter",
        type=_positive_int,
        metavar="N",
        help="epochs of the MLPs and of denoisenet's estimators (default: 100 "
        "on digits, else each estimator's default)",
    )
    study.add_argument(
        "--architecture",
        choices=("dense", "conv"),
        default="dense",
        help="networks of the DenoisingAutoencoder and the BottleneckClassifier: "
        "dense layers, or convolutions in front of them (default: %(default)s)",
    )
    study.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="N",
        help="random seed of splits, noise and training (default: %(default)s)",
    )
    study.add_argument(
        "--out",
        metavar="DIR",
        default="denoisenet-study",
        help="folder for the report and figures (default: ./%(default)s)",
    )
    study.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --out folder that already holds files, replacing "
        "the study's files there (report.md, report.html, results.json and "
        "the figures) and leaving the others; without it such a folder is "
        "refused",
    )
    study.add_argument(
        "--quiet", action="store_true", help="print no progress on stderr"
    )
    return study


def build_parser():
    """The argument parser of the ``denoisenet`` command."""
    parser = argparse.ArgumentParser(
        prog="denoisenet",
        description="Denoising auto-encoders and bottleneck classifiers for "
        "scikit-learn.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_study_parser(sub)
    return parser


def _progress(message):
    print(message, file=sys.stderr, flush=True)


def main(argv=None):
    """Run the ``denoisenet`` command; return its exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 1 when the study cannot run (missing data, an output
        folder that already holds files or cannot be written), 130 when
        Ctrl-C stopped it (also in the middle of a fit). Bad options exit
        with status 2 through argparse.

    Examples
    --------
    >>> from denoisenet.cli import main
    >>> main(["study", "--dataset", "digits", "--out", "report"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _run_study(args)
    except KeyboardInterrupt as exc:
        # A StudyInterrupted says what was left in --out; a Ctrl-C while
        # the libraries load has nothing to say.
        print(f"denoisenet: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


def _run_study(args):
    # Imported here so that --help and --version stay quick.
    from denoisenet.study import StudyConfig, StudyError, run_study

    config = StudyConfig(
        dataset=args.dataset,
        data_home=args.data_home,
        noise_std=args.noise_std,
        n_train=args.n_train,
        max_iter=args.max_iter,
        seed=args.seed,
        out=args.out,
        architecture=args.architecture,
        overwrite=args.overwrite,
    )
    try:
        run_study(config, log=None if args.quiet else _progress)
    except StudyError as exc:
        print(f"denoisenet: error: {exc}", file=sys.stderr)
        return 1
    return 0
