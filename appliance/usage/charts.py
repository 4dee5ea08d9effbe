"""The usage charts as SVG, drawn by pygal (Debian: python3-pygal).

pygal draws stacked bars with a legend, axes with sensible ticks and label placement
for Chinese and English text, which a few lines of our own SVG would not. Charts are
rendered with no JavaScript (``js=[]``: pygal's tooltips script is left out; a
browser draws the SVG without it, old ones included). The same charts go on the
technician dashboard (as ``<img>`` of ``/admin/charts/<name>.svg``) and, inline, in
the district's HTML report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pygal
from pygal.style import Style

from .figures import Figures

STYLE = Style(background="white", plot_background="white", foreground="#333",
              foreground_strong="#111", foreground_subtle="#bbb", font_family="sans-serif",
              colors=("#2b6cb0", "#d69e2e", "#38a169", "#c53030", "#805ad5", "#dd6b20",
                      "#319795", "#718096"), title_font_size=15, label_font_size=11,
              major_label_font_size=11, legend_font_size=11, value_font_size=10,
              no_data_font_size=24)
CHARTS = ("taught", "classes", "top", "tablets", "outbox")
TITLES = {
    "taught": "每周课堂教学（按学科） Lessons taught per week, by subject",
    "classes": "每周课堂教学（按班级） Lessons taught per week, by class",
    "top": "最常用的资源 Most used resources",
    "tablets": "每天使用的平板 Tablets active per day",
    "outbox": "使用记录：待发送与已发送 Usage waiting to leave, and what left",
}
OUTBOX_LABELS = {"pending": "待发送 waiting", "sent": "已发 LRS sent",
                 "carried": "U 盘带走 carried by drive", "failed": "被拒 refused",
                 "dropped": "丢弃 dropped"}
NO_DATA = "暂无数据 No data yet"
# pygal writes its tooltips' configuration as an inline script even with js=[]: it
# does nothing without pygal's script, so it is left out and the SVG is static.
_SCRIPT = re.compile(r"<script[^>]*>window\.pygal[^<]*</script>")


def _config(**kw: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        js=[], style=STYLE, width=560, height=280, explicit_size=True,
        no_data_text=NO_DATA, legend_at_bottom=True, legend_at_bottom_columns=4,
        print_values=False, show_y_guides=True, truncate_label=28, truncate_legend=24,
        margin=8, spacing=6)
    base.update(kw)
    return base


def chart(name: str, fig: Figures, names: Mapping[str, str] | None = None,
          inline: bool = False) -> str:
    """One chart of ``fig`` as SVG text; ``names`` gives resources' titles by id;
    ``inline`` leaves out the XML declaration (for SVG inside HTML)."""
    names = names or {}
    extra = {"disable_xml_declaration": inline}
    c: Any
    if name in ("taught", "classes"):
        # pygal measures CJK text as if it were Latin: room for the legend's names
        wide = name == "classes"      # class labels are long: a legend below, 2 a row
        data = fig.classes if wide else fig.taught
        legend_rows = (len(data) + 1) // 2 if wide else 0
        # pygal 3.1 reserves len // columns legend rows, one too few for an odd count
        odd = 18 if wide and len(data) % 2 else 0
        c = pygal.StackedBar(**_config(title=TITLES[name], legend_at_bottom=wide,
                                       legend_at_bottom_columns=2, truncate_legend=40,
                                       width=600, height=260 + 20 * legend_rows if wide else 280,
                                       margin_left=36, margin_bottom=8 + odd, **extra))
        c.x_labels = [w.split("-")[1] for w in fig.weeks]
        highest = max((sum(col) for col in zip(*data.values(), strict=True)), default=0)
        if 0 < highest <= 10:
            c.y_labels = list(range(highest + 1))      # whole lessons, not 0.2 steps
        for series, counts in data.items():
            c.add(series, counts)
    elif name == "top":
        c = pygal.HorizontalBar(**_config(title=TITLES[name], show_legend=False,
                                           height=300, truncate_label=14,
                                           margin_left=90, **extra))
        rows = list(reversed(fig.top))
        c.x_labels = [names.get(r, r) for r, _ in rows]
        if rows:
            c.add("events", [n for _, n in rows])
    elif name == "tablets":
        c = pygal.Bar(**_config(title=TITLES[name], show_legend=False, **extra))
        c.x_labels = [d[5:] for d in fig.days]
        c.x_label_rotation = 0
        if any(fig.tablets):
            c.add("tablets", fig.tablets)
    elif name == "outbox":
        c = pygal.HorizontalBar(**_config(title=TITLES[name], show_legend=False,
                                           height=220, margin_left=40, **extra))
        keys = [k for k in OUTBOX_LABELS if k in fig.outbox]
        c.x_labels = [OUTBOX_LABELS[k] for k in reversed(keys)]
        if keys:
            c.add("statements", [fig.outbox[k] for k in reversed(keys)])
    else:
        raise KeyError(name)
    return _SCRIPT.sub("", str(c.render(is_unicode=True)))
