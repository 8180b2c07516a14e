"""The report page: one self-contained HTML file (tables + the figures inlined as PNG data URIs).

No script, stylesheet, font or image is fetched from anywhere: the page opens
from disk, offline, in any browser. Tables are pandas' `DataFrame.to_html`
of leaderboard columns, numbers with 4 decimals (`fmt`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1400px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; } .scroll { max-height: 32em; overflow: auto; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
"""


def fmt(value: Any) -> str:
    """A cell as the report prints it: floats with 4 decimals (small ones in e-notation), '-' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4f}"
    return str(value)


def figure_png(fig: Figure, dpi: int = 80) -> str:
    """A figure as a PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def table_html(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    if frame.empty:
        return '<p class="note">(no rows)</p>'
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    shown = frame.map(fmt) if hasattr(frame, "map") else frame.applymap(fmt)
    return shown.to_html(index=False, escape=True, border=0)


@dataclass
class Page:
    """The page being built: a title, then sections of paragraphs, tables and figures, in order."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str, anchor: str) -> None:
        self.parts.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def table(self, frame: pd.DataFrame, columns: list[str] | None = None, scroll: bool = False) -> None:
        body = table_html(frame, columns)
        self.parts.append(f'<div class="scroll">{body}</div>' if scroll else body)

    def figure(self, fig: Figure | None, alt: str, missing: str) -> None:
        if fig is None:
            self.note(missing)
            return
        self.parts.append(f'<img alt="{html.escape(alt)}" src="{figure_png(fig)}">')

    def render(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.parts) + "\n</body></html>\n"
        )
