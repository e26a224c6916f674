"""The study's report: one list of blocks, rendered as Markdown and HTML.

:func:`report_blocks` turns the ``results`` dict into headings,
paragraphs, tables and figures; :func:`render_markdown` and
:func:`render_html` render the same blocks, so the two reports cannot
disagree with each other or with ``results.json``. The number formats
(:func:`pct`, :func:`sec`, ...) are shared with the progress lines.
"""

import base64
import html
import json
import re
from dataclasses import fields

from denoisenet.study.config import DIGITS_MLP_MAX_ITER, MLP_MAX_ITER, StudyConfig
from denoisenet.study.figures import FIGURES


def pct(x):
    return f"{100 * x:.1f}%"


def sec(x):
    return f"{x:.2f} s"


def mse(x):
    return f"{x:.4f}"


def tw(x):
    return f"{x:.3f}"


def integer(n):
    return f"{n:,}"


def _yes_no(flag):
    return "yes" if flag else "no"


def report_blocks(results):
    """The report as a list of blocks that both renderers understand.

    A block is ``("h1" | "h2" | "p" | "note", text)``,
    ``("table", header, rows)`` or ``("figure", file name, caption)``.
    """
    d, total = results["data"], results["total_time_s"]
    height, width = d["image_shape"]
    n_train, n_available = integer(d["n_train"]), integer(d["n_train_available"])
    blocks = [
        ("h1", f"denoisenet study: {d['dataset']}"),
        (
            "p",
            f"{n_train} training images (of {n_available}"
            f" available) and {integer(d['n_test'])} test images of {height}x{width} "
            f"pixels in {d['n_classes']} classes. The study took {sec(total)}, "
            "from loading the data to writing this report.",
        ),
        ("p", _sources(d.get("sources", {}))),
    ]
    for section in (_baseline_blocks, _denoising_blocks, _map_blocks, _blog_blocks):
        blocks += section(results)
    blocks += [
        ("h2", "5. Training curves"),
        ("figure", FIGURES["loss_curves"], "Training loss per epoch"),
    ]
    return blocks + _settings_blocks(results)


class UserText(str):
    """Text that the user chose (a path): Markdown shows it as it is."""


def _md_text(text):
    """``text`` for Markdown: a user's text is escaped, so that ``<script>``
    or ``*`` in a folder's name is shown, not rendered, and a newline cannot
    end a table row; the report's own text is left as it is."""
    if isinstance(text, tuple):  # a paragraph made of parts
        return "".join(_md_text(part) for part in text)
    if not isinstance(text, UserText):
        return text
    # Not _, which paths are full of and which within a word is no markup.
    text = re.sub(r"([\\`*\[\]<>&|~])", r"\\\1", text)
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _plain(text):
    """``text`` as one string (a paragraph of parts joined)."""
    return "".join(text) if isinstance(text, tuple) else text


def _sources(sources):
    """Where the training and the test images were read from, in words."""
    train, test = UserText(sources.get("train")), UserText(sources.get("test"))
    if train == test:
        return ("Training and test images read from ", train, ".")
    return ("Training images read from ", train, "; test images read from ", test, ".")


def _baseline_blocks(results):
    rows = [
        [
            r["model"],
            pct(r["accuracy"]),
            sec(r["fit_time_s"]),
            str(r["n_iter"]),
            str(r["max_iter"]),
            _yes_no(r["converged"]),
        ]
        for r in results["classifiers"]
    ]
    header = ["model", "test accuracy", "fit time", "iterations", "max_iter"]
    return [
        ("h2", "1. Baselines"),
        ("figure", FIGURES["samples"], "Training images"),
        ("table", [*header, "converged"], rows),
        (
            "p",
            "Each model is named with every parameter it was given that differs "
            "from its default; all but LogisticRegression were also given "
            f"random_state={results['settings']['seed']} (--seed).",
        ),
    ]


def _denoising_blocks(results):
    r = results["denoising"]
    noisy = f"noisy (Gaussian, std {r['noise_std']:g}, clipped to [0, 1])"
    rows = [
        ["clean", pct(r["accuracy_clean"]), "0"],
        [noisy, pct(r["accuracy_noisy"]), mse(r["mse_noisy"])],
        ["denoised", pct(r["accuracy_denoised"]), mse(r["mse_denoised"])],
    ]
    header = [
        "test images",
        f"accuracy of {r['classifier']} trained on clean images",
        "mean squared error against the clean images",
    ]
    return [
        ("h2", "2. Noise and denoising"),
        ("figure", FIGURES["denoising"], "Clean, noisy and denoised test images"),
        ("table", header, rows),
        (
            "p",
            f"{r['denoiser']}, trained on the clean training images: fit "
            f"{sec(r['dae_fit_time_s'])}, {r['dae_n_iter']} "
            f"epochs of at most {r['dae_max_iter']}, converged: "
            f"{_yes_no(r['dae_converged'])}.",
        ),
    ]


def _map_blocks(results):
    rows = [
        [
            f"{r['map']}: {r['method']}",
            integer(r["n_samples"]),
            tw(r["trustworthiness"]),
            pct(r["knn_accuracy"]),
            tw(r["published_trustworthiness"]),
            pct(r["published_knn_accuracy"]),
            sec(r["time_s"]),
        ]
        for r in results["maps"]
    ]
    first = results["maps"][0]
    header = [
        "map",
        "points",
        "trustworthiness",
        "kNN accuracy in 2-D",
        "trustworthiness (published protocol)",
        "5-NN accuracy (published protocol)",
        "time",
    ]
    caption = (
        "t-SNE, and the bottleneck without and with its neighbour term, "
        "coloured by class; beneath each bottleneck's points, the class its "
        "decoder gives every point of the plane"
    )
    return [
        ("h2", "3. Two-dimensional maps"),
        ("figure", FIGURES["maps"], caption),
        ("table", header, rows),
        ("p", _plain_bottleneck_text(results)),
        (
            "p",
            f"Trustworthiness with {results['settings']['n_neighbors']} neighbours "
            f"on the first {integer(first['trustworthiness_samples'])} points; kNN "
            f"accuracy: 5-fold cross-validated KNeighborsClassifier("
            f"{results['settings']['n_neighbors']}) in the 2-D map; the figure's "
            "panels give these two. The bottlenecks' times are their transform "
            "only. The published protocol (Sainburg, McInnes and Gentner, Neural "
            "Computation 2021, whose table gives parametric UMAP and t-SNE "
            "these two figures): trustworthiness with 5 neighbours on "
            f"{integer(first['published_test_points'])} test points, and a "
            "5-NN classifier fitted on the embedded training points and "
            "scored on the embedded test points; the bottlenecks map all "
            f"{integer(_map(results, 'bottleneck')['published_train_points'])} "
            "training points with transform, while t-SNE, which cannot map new "
            f"points, embeds {integer(first['published_train_points'])} of them "
            "together with the test points.",
        ),
    ]


def _map(results, name):
    """The record of the map called ``name``."""
    return next(r for r in results["maps"] if r["map"] == name)


def _plain_bottleneck_text(results):
    """What the map without the neighbour term is, and what its fit gave."""
    plain = _map(results, "bottleneck without the neighbour term")
    default = _map(results, "bottleneck")
    return (
        "The bottleneck with the neighbour term (neighbor_weight="
        f"{default['neighbor_weight']:g}) is the classifier of step 1 "
        f"(test accuracy {pct(results['classifiers'][3]['accuracy'])}). The one "
        "without it has step 1's settings but neighbor_weight=0, a plain "
        "cross-entropy network, and was fitted in this step: test accuracy "
        f"{pct(plain['accuracy'])}, fit {sec(plain['fit_time_s'])}, "
        f"{plain['n_iter']} epochs of at most {plain['max_iter']}, converged: "
        f"{_yes_no(plain['converged'])}."
    )


def _blog_blocks(results):
    blog = results["blog"]
    if blog["comparable"]:
        note = "The blog's figures are for MNIST, as is this run."
    else:
        note = (
            f"The blog's figures are for MNIST; this run is on {blog['dataset']}, "
            "so they are shown for reference only and are not comparable."
        )
    rows = [
        [r["what"], r["blog_mnist"], pct(r["measured"]), r["measured_with"]]
        for r in blog["rows"]
    ]
    header = [
        "what",
        "the blog (MNIST)",
        f"measured here ({blog['dataset']})",
        "measured with",
    ]
    return [
        ("h2", "4. Against the blog"),
        ("note", note),
        ("table", header, rows),
    ]


_NONE_MEANS = {
    "data_home": "not given",
    "n_train": "all",
    "max_iter": "not given",
    "max_iter_used": "denoisenet's estimators their own defaults; the two "
    f"MLPs {MLP_MAX_ITER[0]} and {MLP_MAX_ITER[1]} on MNIST-sized data, "
    f"{DIGITS_MLP_MAX_ITER} on digits",
    "threads": "the libraries' defaults",
}


# Settings that are text the user typed (paths), not numbers or choices.
_TYPED_TEXT = {"out", "data_home"}


def _settings_blocks(results):
    # The command's options as a user typed them, then what they resolved to.
    options = {field.name for field in fields(StudyConfig)}
    rows = [
        [
            "--" + key.replace("_", "-") if key in options else key,
            _NONE_MEANS.get(key, "None")
            if value is None
            else UserText(value)
            if key in _TYPED_TEXT
            else str(value),
        ]
        for key, value in results["settings"].items()
    ]
    rows += [[name, str(version)] for name, version in results["versions"].items()]
    return [
        ("h2", "6. Options, settings and versions"),
        ("table", ["setting", "value"], rows),
    ]


def render_markdown(blocks):
    """The report as Markdown."""
    lines = []
    for kind, *content in blocks:
        if kind == "h1":
            lines += [f"# {content[0]}", ""]
        elif kind == "h2":
            lines += [f"## {content[0]}", ""]
        elif kind == "p":
            lines += [_md_text(content[0]), ""]
        elif kind == "note":
            lines += [f"> **Note:** {content[0]}", ""]
        elif kind == "figure":
            lines += [f"![{content[1]}]({content[0]})", ""]
        elif kind == "table":
            header, rows = content
            lines += [_md_row(header), "|" + "---|" * len(header)]
            lines += [_md_row(cells) for cells in rows] + [""]
    return "\n".join(lines)


def _md_row(cells):
    shown = [
        _md_text(cell) if isinstance(cell, UserText) else cell.replace("|", "\\|")
        for cell in cells
    ]
    return "| " + " | ".join(shown) + " |"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 1rem; }
"""

_NUMBER = re.compile(r"^[~<>]?[\d.,]+( s|%)?$")


def render_html(blocks, images):
    """The report as one self-contained HTML page.

    ``images`` maps each figure's file name to its PNG bytes.
    """
    esc = html.escape
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{esc(content[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(_plain(content[0]))}</p>")
        elif kind == "note":
            body.append(f'<p class="note"><strong>Note:</strong> {esc(content[0])}</p>')
        elif kind == "figure":
            data = base64.b64encode(images[content[0]]).decode()
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" '
                f'alt="{esc(content[1])}"><figcaption>{esc(content[1])}'
                "</figcaption></figure>"
            )
        elif kind == "table":
            body.append(_html_table(*content))
    title = esc(blocks[0][1])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_table(header, rows):
    esc = html.escape
    head = "".join(f"<th>{esc(cell)}</th>" for cell in header)
    lines = [f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>"]
    for cells in rows:
        tds = "".join(
            f'<td class="num">{esc(c)}</td>'
            if _NUMBER.match(c)
            else f"<td>{esc(c)}</td>"
            for c in cells
        )
        lines.append(f"<tr>{tds}</tr>")
    return "\n".join([*lines, "</tbody>\n</table>"])


def report_files(results, images):
    """Every file of the study: name to bytes, the figures first.

    ``images`` maps each figure's file name to its PNG bytes.
    """
    blocks = report_blocks(results)
    texts = {
        "results.json": json.dumps(results, indent=2) + "\n",
        "report.md": render_markdown(blocks),
        "report.html": render_html(blocks, images),
    }
    # A path that is not valid UTF-8 (a folder named in bytes, which Python
    # holds as surrogates) is written with backslash escapes, as JSON does.
    encoded = {
        name: text.encode("utf-8", errors="backslashreplace")
        for name, text in texts.items()
    }
    return {**images, **encoded}
