"""The ``denoisenet`` command.

``denoisenet study`` runs the whole study on one data set and writes a
report (Markdown and self-contained HTML), ``results.json`` and the figures
into one folder. Problems a user can fix (missing data, no network, an
unwritable folder, bad option values) end with one line on stderr and a
non-zero exit status, never a traceback.
"""

import argparse
import math
import os
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


def _existing_folder(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    return text


def _max_iter_help():
    """What --max-iter sets, and what runs without it, read from the code."""
    from denoisenet import BottleneckClassifier, DenoisingAutoencoder
    from denoisenet.study import config

    dae = DenoisingAutoencoder().get_params()["max_iter"]
    bottleneck = BottleneckClassifier().get_params()["max_iter"]
    shallow, deep = config.MLP_MAX_ITER
    return (
        "the most epochs of the two MLPs, the DenoisingAutoencoder and the "
        "BottleneckClassifier; each stops earlier once its loss stops "
        f"improving (default: {dae} for the DenoisingAutoencoder and "
        f"{bottleneck} for the BottleneckClassifier, their own defaults; "
        f"{config.DIGITS_MLP_MAX_ITER} for the two MLPs on digits, and on mnist "
        f"and fashion-mnist {shallow} and {deep}). LogisticRegression is not "
        "affected"
    )


class _StudyParser(argparse.ArgumentParser):
    """The study's parser: reads the estimators' defaults for its help only."""

    def format_help(self):
        for action in self._actions:
            if action.dest == "max_iter" and not action.help:
                action.help = _max_iter_help()
        return super().format_help()


def _add_study_parser(sub):
    study = sub.add_parser(
        "study",
        help="run the whole study on one dataset and write a report",
        description="Baselines, noise and denoising, and 2-D maps on one "
        "dataset; writes report.md, report.html, results.json and PNG "
        "figures into --out.",
    )
    _add_data_options(study)
    _add_training_options(study)
    _add_output_options(study)
    return study


def _add_data_options(study):
    study.add_argument(
        "--dataset",
        choices=DATASETS,
        default="digits",
        help="digits (scikit-learn's 8x8 digits, no download), mnist or "
        "fashion-mnist (default: %(default)s)",
    )
    study.add_argument(
        "--data-home",
        type=_existing_folder,
        metavar="DIR",
        help="an existing folder with the four IDX files of mnist or "
        "fashion-mnist (in it or in its mnist/ or fashion-mnist/ subfolder), "
        "also the OpenML cache of --download; not used for digits. Without "
        "it, fashion-mnist is read from Debian's folder "
        "/usr/share/datasets/fashion-mnist when the package "
        "dataset-fashion-mnist is installed",
    )
    study.add_argument(
        "--download",
        action="store_true",
        help="allow downloading mnist or fashion-mnist from OpenML (through "
        "scikit-learn's cache, in --data-home if given, else in "
        "~/scikit_learn_data) when no local IDX files are found; without it "
        "the study reads local files only",
    )


def _add_training_options(study):
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
        # Filled in when the help is shown (_StudyParser): it reads the
        # estimators' defaults, and importing them takes about two seconds.
        help="",
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


def _add_output_options(study):
    study.add_argument(
        "--out",
        metavar="DIR",
        default="denoisenet-study",
        help="folder for the report and figures, new or empty unless "
        "--overwrite is given (default: ./%(default)s)",
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
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_StudyParser
    )
    _add_study_parser(sub)
    return parser


class _Progress:
    """Progress lines on stderr, as long as stderr takes them.

    Best effort: a closed or broken stderr (``2>&-``, ``2>&1 | head -1``, a
    full disk) ends the lines, never the study, which it did after hours of
    training, with no message (the traceback went to the same stderr).
    """

    def __init__(self):
        self.on = True

    def __call__(self, message):
        if not self.on:
            return
        try:
            print(message, file=sys.stderr, flush=True)
        except (OSError, ValueError):  # ValueError: stderr closed
            self.on = False


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
        download=args.download,
    )
    try:
        run_study(config, log=None if args.quiet else _Progress())
    except StudyError as exc:
        print(f"denoisenet: error: {exc}", file=sys.stderr)
        return 1
    return 0
