"""The district's usage report: ``ketang report SOURCE --out DIR``.

From ingested usage (an LRS export or a folder of drive outboxes, read by
:mod:`.sources`), writes self-contained HTML (inline SVG charts and CSS, nothing
fetched, no JavaScript): ``index.html`` for all schools, with which schools have not
reported for how long and the questionnaire answers summarised per question, and
``school-<n>.html`` per school, with the same charts as the
device's dashboard (:mod:`.charts`). Files are written atomically.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from content_cache.atomic import atomic_write_bytes

from .charts import CHARTS, chart
from .figures import Figures, statement_figures
from .xapi import EXT

CSS = """body{font-family:sans-serif;margin:1.5rem;color:#1b1f24;max-width:1240px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}.en{color:#5c6670}
table{border-collapse:collapse}td,th{border:1px solid #d8dde3;padding:.3rem .6rem;text-align:left}
.late{background:#fff3cd}.charts{display:flex;flex-wrap:wrap;gap:1rem}
.charts svg{border:1px solid #d8dde3;max-width:100%;height:auto}.muted{color:#5c6670}"""


@dataclass
class SchoolLine:
    """One school in the index: its name, page, newest event, days since, events."""

    name: str
    page: str
    last: str
    days: int | None
    events: int


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html lang=\"zh-Hans\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
            "</body></html>\n").encode()


def _charts(fig: Figures) -> str:
    return "<div class=\"charts\">\n" + "\n".join(
        chart(name, fig, inline=True) for name in CHARTS if name != "outbox") + "\n</div>"


def days_since(last: str, now: datetime) -> int | None:
    """Whole days from an ISO time to ``now`` (None when there is no time)."""
    if not last:
        return None
    try:
        t = datetime.fromisoformat(last.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return max(0, (now - t).days)


def questionnaire_summary(statements: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per questionnaire id: answers (count), schools, and per question id the answers
    summarised: choices or scale values counted, texts listed (at most 50)."""
    out: dict[str, dict[str, Any]] = {}
    for st in statements:
        try:
            ext = st["context"]["extensions"]
            qid = ext[EXT + "questionnaire"]
            answers = st["result"]["extensions"][EXT + "answers"]
        except (KeyError, TypeError):
            continue
        if not isinstance(qid, str) or not isinstance(answers, dict):
            continue
        q = out.setdefault(qid, {"answers": 0, "schools": Counter(), "questions": {}})
        q["answers"] += 1
        q["schools"][str(ext.get(EXT + "school", ""))] += 1
        for question, value in answers.items():
            row = q["questions"].setdefault(str(question), {"counts": Counter(), "texts": []})
            if isinstance(value, str):
                if len(row["texts"]) < 50:
                    row["texts"].append(value[:2000])
            else:
                for v in value if isinstance(value, list) else [value]:
                    row["counts"][str(v)] += 1
    return dict(sorted(out.items()))


def _questionnaires_html(summary: dict[str, dict[str, Any]]) -> str:
    if not summary:
        return ""
    parts = ["<h2>问卷 <span class=\"en\">Questionnaires</span></h2>"]
    for qid, q in summary.items():
        schools = ", ".join(f"{_e(k)} ({n})" for k, n in sorted(q["schools"].items()))
        parts.append(f"<h3>{_e(qid)}</h3><p class=\"muted\">{q['answers']} 份回答 "
                     f"answers · {schools}</p><table><tr><th>问题 Question</th>"
                     "<th>回答 Answers</th></tr>")
        for question, row in q["questions"].items():
            counts = ", ".join(f"{_e(k)}: {n}" for k, n in sorted(row["counts"].items()))
            texts = "".join(f"<li>{_e(t)}</li>" for t in row["texts"])
            parts.append(f"<tr><td>{_e(question)}</td><td>{counts}"
                         f"{'<ul>' + texts + '</ul>' if texts else ''}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)


def write_report(statements: Iterable[dict[str, Any]], out: Path, late_days: int = 14,
                 now: datetime | None = None, source: str = "") -> list[SchoolLine]:
    """Write ``index.html`` and one page per school into ``out``; return the schools."""
    now = now or datetime.now(UTC)
    statements = list(statements)
    everyone, schools = statement_figures(statements, now.date())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[SchoolLine] = []
    for i, (name, fig) in enumerate(schools.items(), 1):
        page = f"school-{i}.html"
        lines.append(SchoolLine(name, page, fig.last, days_since(fig.last, now), fig.events))
        atomic_write_bytes(out / page, _page(f"{name} · 使用情况 Usage", (
            f"<p><a href=\"index.html\">‹ 全部学校 All schools</a></p>"
            f"<h1>{_e(name)} · 使用情况 <span class=\"en\">Usage</span></h1>"
            f"<p class=\"muted\">{fig.events} 条记录 statements; 最新 newest: "
            f"{_e(fig.last[:16].replace('T', ' ') or '—')}</p>{_charts(fig)}")))
    lines.sort(key=lambda s: (-(s.days if s.days is not None else 10**6), s.name))
    rows = "\n".join(
        f"<tr class=\"{'late' if s.days is None or s.days >= late_days else ''}\">"
        f"<td><a href=\"{_e(s.page)}\">{_e(s.name)}</a></td>"
        f"<td>{_e(s.last[:16].replace('T', ' ') or '—')}</td>"
        f"<td>{'—' if s.days is None else s.days}</td><td>{s.events}</td></tr>"
        for s in lines)
    late = [s for s in lines if s.days is None or s.days >= late_days]
    summary = (f"{len(late)} 所学校超过 {late_days} 天没有上报 "
               f"<span class=\"en\">{len(late)} schools have not reported for "
               f"{late_days} days or more</span>") if late else (
               f"所有学校 {late_days} 天内都有上报 <span class=\"en\">Every school reported "
               f"within {late_days} days</span>")
    body = (f"<h1>使用情况报告 <span class=\"en\">Usage report</span></h1>"
            f"<p class=\"muted\">{_e(now.strftime('%Y-%m-%d %H:%M'))} UTC · "
            f"{len(lines)} 所学校 schools · {everyone.events} 条记录 statements"
            f"{' · ' + _e(source) if source else ''}</p>"
            f"<h2>上报情况 <span class=\"en\">Who reported when</span></h2><p>{summary}</p>"
            "<table><tr><th>学校 School</th><th>最新记录 Newest (UTC)</th>"
            "<th>天前 Days ago</th><th>记录 Statements</th></tr>\n"
            f"{rows}</table>"
            f"<h2>全部学校 <span class=\"en\">All schools</span></h2>{_charts(everyone)}"
            f"{_questionnaires_html(questionnaire_summary(statements))}")
    atomic_write_bytes(out / "index.html", _page("使用情况报告 Usage report", body))
    return lines
