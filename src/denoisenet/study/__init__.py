"""The study that ``denoisenet study`` runs, and its report.

Four steps on one data set: baselines (logistic regression, two MLPs and the
bottleneck classifier), noise and denoising, 2-D maps (t-SNE beside the
bottleneck), and the blog's figures beside the measured ones. Every number
goes into one ``results`` dict; ``results.json``, ``report.md`` and
``report.html`` are all rendered from it, so they cannot disagree.

The modules follow the pipeline:

- :mod:`~denoisenet.study.config`: the options and what they resolve to;
- :mod:`~denoisenet.study.data`: loading and sampling the data set;
- :mod:`~denoisenet.study.experiments`: the models, their fits and scores;
- :mod:`~denoisenet.study.figures`: the figures;
- :mod:`~denoisenet.study.report`: the report as Markdown and HTML;
- :mod:`~denoisenet.study.output`: the output folder and its files.

:func:`run_study` runs them in that order.
"""

import time

from denoisenet.study import experiments, figures, output
from denoisenet.study.config import (
    StudyConfig,
    StudyError,
    limited_threads,
    versions,
)
from denoisenet.study.data import data_summary, load_data
from denoisenet.study.figures import FIGURES

__all__ = ["StudyConfig", "StudyError", "run_study"]


def run_study(config, log=None):
    """Run the whole study, write its files into ``config.out``; return results.

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
    """
    log = log or (lambda message: None)
    start = time.perf_counter()
    out = output.prepare_out(config.out)
    figures.check_matplotlib()
    data = load_data(config)
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
        results.update(_run_steps(data, config, out, log))
    results["blog"] = experiments.blog_rows(results, config.dataset)
    results["figures"] = dict(FIGURES)
    results["total_time_s"] = time.perf_counter() - start
    output.write_reports(results, out)
    log(f"[4/4] report.md, report.html and results.json in {out}")
    return results


def _run_steps(data, config, out, log):
    save = output.save_figure
    save(figures.samples_figure(data), out, FIGURES["samples"])
    classifiers, models = experiments.baselines(data, config, log)
    log(f"[2/4] noise: Gaussian, std {config.noise_std:g}, clipped to [0, 1]")
    denoising, dae, X_noisy, X_denoised = experiments.denoising(
        data, models["mlp"], config, log
    )
    figure = figures.denoising_figure(data, X_noisy, X_denoised, config.noise_std)
    save(figure, out, FIGURES["denoising"])
    log("[3/4] 2-D maps: t-SNE and the bottleneck")
    maps, Z_tsne, Z_bottleneck, y = experiments.maps(
        data, models["bottleneck"], config, log
    )
    save(figures.maps_figure(Z_tsne, Z_bottleneck, y, data), out, FIGURES["maps"])
    figure = figures.loss_curves_figure(dae, models["bottleneck"])
    save(figure, out, FIGURES["loss_curves"])
    return {"classifiers": classifiers, "denoising": denoising, "maps": maps}
