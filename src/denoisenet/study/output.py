"""The study's output folder and the files written into it.

:func:`prepare_out` checks the folder before any work; :func:`save_figure`
and :func:`write_reports` write into it. Every failure becomes a one-line
:class:`StudyError`.
"""

import json
import tempfile
from pathlib import Path

from denoisenet.study.config import StudyError
from denoisenet.study.report import render_html, render_markdown, report_blocks


def prepare_out(out):
    """Create the output folder and check that files can be written there."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing read-only folder: only a real file
        # tells whether the report can be written at the end.
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StudyError(f"cannot write to --out {str(out)!r}: {reason}") from exc
    return out


def save_figure(figure, out, name):
    """Write ``figure`` as PNG to ``out / name``."""
    try:
        figure.savefig(out / name, dpi=100)
    except OSError as exc:
        raise StudyError(f"cannot write {out / name}: {exc.strerror or exc}") from exc


def write_reports(results, out):
    """Write results.json, report.md and report.html into ``out``."""
    blocks = report_blocks(results)
    files = {
        "results.json": json.dumps(results, indent=2) + "\n",
        "report.md": render_markdown(blocks),
        "report.html": render_html(blocks, out),
    }
    for name, text in files.items():
        try:
            (Path(out) / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StudyError(
                f"cannot write {Path(out) / name}: {exc.strerror or exc}"
            ) from exc
