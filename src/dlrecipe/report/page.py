"""A static HTML page (no server, no scripts): sections of headings, tables and images.

python -m dlrecipe.report outputs/train/<date>/<time>    # writes <run dir>/report/index.html
"""

from __future__ import annotations

import html
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; margin: 0.5em 0; } .note { color: #666; font-size: 0.9em; }
.header { color: #444; } code { background: #f4f4f4; padding: 0 3px; }
"""


def table(rows: list[dict], digits: int = 4) -> str:
    if not rows:
        return ""
    # a column empty in every row (no test set, no probability for regression) says nothing
    columns = [c for c in rows[0] if any(r.get(c) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_fmt(r.get(c), digits))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def image(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def write_page(path: Path, title: str, sections: list[tuple[str, str]], header: str = "") -> Path:
    """header: HTML shown under the title (already escaped by the helpers above)."""
    parts = [f"<h2>{html.escape(h)}</h2>\n{body}" for h, body in sections if body]
    path.write_text(
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        # an empty icon: browsers would otherwise ask for favicon.ico and log a failed load
        f"<link rel='icon' href='data:,'><style>{STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{header}\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return path


def _fmt(value, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)
