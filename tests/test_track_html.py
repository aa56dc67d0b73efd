"""track/html.py and the page templates: autoescaped user text, self-contained pages."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from trainlab import api
from trainlab.track import html
from trainlab.track.report import write_report

XSS = "<script>alert(1)</script>"


def test_table_escapes_text_and_formats_numbers():
    t = str(html.table(["name", "<b>value</b>"], [[XSS, 0.123456], ["tiny", 1e-5], ["none", None], ["n", 3]]))
    assert "<script" not in t and "&lt;script&gt;alert(1)&lt;/script&gt;" in t
    assert "<th>&lt;b&gt;value&lt;/b&gt;</th>" in t
    cells = re.findall(r"<td>([^<]*)</td>", t)
    assert cells == ["&lt;script&gt;alert(1)&lt;/script&gt;", "0.1235", "tiny", "1.000e-05", "none", "", "n", "3"]


def test_figure_is_a_data_uri_and_its_caption_cannot_close_the_attribute():
    png = b"\x89PNG\r\n\x1a\n not really"
    f = html.figure(png, "it's <here>")
    assert f["uri"].startswith("data:image/png;base64,")
    assert base64.b64decode(f["uri"].split(",", 1)[1]) == png
    page = html.render("compare_report.html", recipe="r", optimizers=["sgd"], seeds=1, budget_epochs=1,
                       created="now", protocol=[], results={"header": [], "rows": []}, chosen_lr=[], figures=[f])
    alt = re.search(r"<img alt='([^']*)' src='(data:image/png;base64,[^']*)'>", page)
    assert alt and alt.group(1) == "it&#39;s &lt;here&gt;" and alt.group(2) == f["uri"]


def test_every_page_inlines_the_one_stylesheet():
    css = (html.environment().loader.get_source(html.environment(), "style.css")[0]).strip()
    page = html.render("compare_report.html", recipe="r", optimizers=[], seeds=0, budget_epochs=0, created="",
                       protocol=[], results={"header": [], "rows": []}, chosen_lr=[], figures=[])
    assert page.count("<style>") == 1 and css in page and "<link" not in page and "<script" not in page


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A run whose name and class labels are markup (from a user's CSV and recipe)."""
    tmp = tmp_path_factory.mktemp("xss")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    labels = np.where(x[:, 0] > 0, XSS, "[/x]")
    csv = tmp / "hostile.csv"
    csv.write_text("a,b,label\n" + "".join(f"{a:.4f},{b:.4f},{y}\n" for (a, b), y in zip(x, labels)))
    return api.train({"name": f"{XSS} [/x]", "seed": 0,
                      "data": {"source": "csv", "path": str(csv), "target": "label", "batch_size": 16},
                      "model": {"name": "mlp", "widths": [8]}, "optim": {"name": "adamw", "lr": 1e-2},
                      "train": {"epochs": 1, "threads": 1},
                      "output": {"plots": False, "report": False, "tensorboard": False}},
                     run_dir=tmp / "run", progress=False)


def test_run_name_and_class_labels_reach_report_html_escaped(hostile_run):
    page = write_report(hostile_run.path).read_text()
    assert "<script" not in page.lower()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>{escaped} [/x] · trainlab report</title>" in page
    assert f"<h1>{escaped} [/x]</h1>" in page
    per_class = page.split("<h2>Per class (test split)</h2>", 1)[1].split("</table>", 1)[0]
    assert sorted(re.findall(r"<tr><td>([^<]*)</td>", per_class)) == sorted([escaped, "[/x]"])
