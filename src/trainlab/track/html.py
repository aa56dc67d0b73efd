"""The HTML pages trainlab writes (a run's report.html, the optimizer comparison's and the study's):
Jinja2 templates in track/templates/ with autoescape on, so text from a recipe, a data set or a run
(names, class labels, errors) reaches a page as text, never as markup.

Every page extends `base.html`, which inlines the one stylesheet `style.css`; images are data: URIs, so a
page is one self-contained file (no script, no network). `macros.html` holds the table and figure pieces
the pages share; `table()` and `figure()` here render the same macros for Python callers.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from functools import lru_cache
from typing import Any, Iterable

import jinja2
from markupsafe import Markup


def fmt(v: Any) -> str:
    """A table cell as text: floats to 4 decimals (small ones in e-notation), None as empty."""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return "" if v is None else str(v)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """`data` as a data: URI, for an <img> that needs no file beside the page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def cell_text(v: Any) -> str:
    """A value for a key/value table: dicts and lists as JSON, the rest as str() gives it."""
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("trainlab.track", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["cell"] = cell_text
    return env


def render(template_name: str, **context: Any) -> str:
    """The page `template_name` (in track/templates/) rendered with `context`; `written` (when the page
    was written) is filled in unless given."""
    context.setdefault("written", dt.datetime.now().isoformat(timespec="seconds"))
    return environment().get_template(template_name).render(**context)


def _macros():
    return environment().get_template("macros.html").module


def table(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Markup:
    """An HTML table: `header` cells, then one row per item of `rows` (cells formatted by `fmt`)."""
    return Markup(_macros().table(list(header), [list(r) for r in rows]))


def figure(png: bytes, caption: str, wide: bool = False, alt: str | None = None) -> dict[str, Any]:
    """A figure for the pages' `figure` and `grid` macros: the PNG as a data: URI, its caption, and its
    alt text (the caption unless given); `wide` spans the whole grid row."""
    return {"uri": data_uri(png), "caption": caption, "wide": wide, "alt": caption if alt is None else alt}
