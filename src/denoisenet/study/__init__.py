"""The study that ``denoisenet study`` runs, and its report.

Four steps on one data set: baselines (logistic regression, two MLPs and the
bottleneck classifier), noise and denoising, 2-D maps (t-SNE beside the
bottleneck without and with its neighbour term), and the blog's figures
beside the measured ones. Every number goes into one ``results`` dict;
``results.json``, ``report.md`` and ``report.html`` are all rendered from
it, so they cannot disagree.

The modules follow the pipeline:

- :mod:`~denoisenet.study.config`: the options and what they resolve to;
- :mod:`~denoisenet.study.data`: loading and sampling the data set;
- :mod:`~denoisenet.study.experiments`: the models, their fits and scores;
- :mod:`~denoisenet.study.figures`: the figures;
- :mod:`~denoisenet.study.report`: the report as Markdown and HTML;
- :mod:`~denoisenet.study.output`: the output folder, written only at the
  end and never over a user's files without ``--overwrite``.

:func:`run_study` runs them in that order.
"""

import time

from denoisenet.study import experiments, figures, output
from denoisenet.study.config import (
    StudyConfig,
    StudyError,
    StudyInterrupted,
    limited_threads,
    versions,
)
from denoisenet.study.data import data_summary, load_data
from denoisenet.study.figures import FIGURES
from denoisenet.study.report import report_files

__all__ = ["StudyConfig", "StudyError", "StudyInterrupted", "run_study"]


def run_study(config, log=None):
    """Run the whole study, write its files into ``config.out``; return results.

    Nothing is written before every step has run; then all files are
    written at once (see :mod:`denoisenet.study.output`). A failed or
    interrupted run leaves no report behind.

    Parameters
    ----------
    config : StudyConfig
        The command's options.
    log : callable, default=None
        Called with one line of progress at a time; None prints nothing.

    Returns
    -------
    results : dict
        Every number of the report, as written to ``results.json``.

    Raises
    ------
    StudyError
        For a problem the user can fix (missing data, an output folder that
        holds files or cannot be written).
    StudyInterrupted
        When the user pressed Ctrl-C, also during a fit that kept its
        last epoch; its message says what was left in ``config.out``.
    """
    log = log or (lambda message: None)
    folder = output.OutputFolder(config.out, overwrite=config.overwrite)
    try:
        with folder:
            results = _run(config, folder, log)
    except KeyboardInterrupt as exc:
        during = f" while {exc}" if str(exc) else ""
        raise StudyInterrupted(f"interrupted{during}; {folder.outcome()}") from None
    log(f"[4/4] report.md, report.html and results.json in {folder.path}")
    return results


def _run(config, folder, log):
    start = time.perf_counter()
    figures.check_matplotlib()
    data = load_data(config)
    experiments.check_test_set(data)
    results = {
        "settings": experiments.settings(config),
        "versions": versions(),
        "data": data_summary(data, config),
    }
    d = results["data"]
    log(
        f"[1/4] {config.dataset}: {d['n_train']:,} training and {d['n_test']:,} "
        f"test images of {d['image_shape'][0]}x{d['image_shape'][1]} pixels"
    )
    with limited_threads(results["settings"]["threads"]):
        steps, images = _run_steps(data, config, log)
    results.update(steps)
    results["blog"] = experiments.blog_rows(results, config.dataset)
    results["figures"] = dict(FIGURES)
    results["total_time_s"] = time.perf_counter() - start
    folder.write(report_files(results, images))
    return results


def _run_steps(data, config, log):
    """Steps 1 to 3; return their records and the figures' PNG bytes."""
    png = figures.to_png
    images = {FIGURES["samples"]: png(figures.samples_figure(data))}
    classifiers, models = experiments.baselines(data, config, log)
    log(f"[2/4] noise: Gaussian, std {config.noise_std:g}, clipped to [0, 1]")
    denoising, dae, X_noisy, X_denoised = experiments.denoising(
        data, models["mlp"], config, log
    )
    figure = figures.denoising_figure(data, X_noisy, X_denoised, config.noise_std)
    images[FIGURES["denoising"]] = png(figure)
    log(
        "[3/4] 2-D maps: t-SNE, and the bottleneck without its neighbour term "
        "(fitted now) and with it"
    )
    maps, embeddings, y, mappers = experiments.maps(
        data, models["bottleneck"], config, log
    )
    figure = figures.maps_figure(embeddings, y, data, maps, mappers)
    images[FIGURES["maps"]] = png(figure)
    figure = figures.loss_curves_figure(dae, models["bottleneck"])
    images[FIGURES["loss_curves"]] = png(figure)
    steps = {"classifiers": classifiers, "denoising": denoising, "maps": maps}
    return steps, images
