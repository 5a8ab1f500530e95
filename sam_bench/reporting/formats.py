"""The report in other formats, converted from the Markdown the sections write.

Sections only emit a small Markdown subset (headings, paragraphs, pipe tables, links, images,
bold / code spans), so each converter parses exactly that: HTML is one self-contained file with
the figures embedded as base64 PNG, LaTeX is booktabs tables under section headings, CSV holds
every number (each metric of each result, and each numeric table cell of the report).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import re
from fnmatch import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

from .entry import ReportEntry

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)]+)\)")
NUMBER = re.compile(r"^[-+−]?\d+(\.\d+)?$")
_NUM = r"[-+−]?(\d+(\.\d*)?|\.\d+)"
NUMERIC_CELL = re.compile(rf"^(-|{_NUM}( \({_NUM}\))?( \[{_NUM}, {_NUM}\])?( ○)?)$")


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


# ("h", level, text) | ("p", text) | ("ul", [item, ...]) | Table
Block = Union[tuple[str, int, str], tuple[str, str], tuple[str, list[str]], Table]
BULLET = "- "


def parse(markdown: str) -> Iterator[Block]:
    """Headings, paragraphs (consecutive non-blank lines), "- " lists and pipe tables, in order."""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            yield ("h", level, line[level:].strip())
            i += 1
        elif line.startswith("|"):
            table = Table(_cells(line))
            i += 2  # header and |---| rule
            while i < len(lines) and lines[i].startswith("|"):
                table.rows.append(_cells(lines[i]))
                i += 1
            yield table
        elif line.startswith(BULLET):
            items = []
            while i < len(lines) and lines[i].startswith(BULLET):
                items.append(lines[i][len(BULLET):].strip())
                i += 1
            yield ("ul", items)
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", BULLET)):
                para.append(lines[i].strip())
                i += 1
            yield ("p", " ".join(para))


def is_numeric(cell: str) -> bool:
    """A number, a number with its interval (`12.3 [8.1, 15.0]`), a difference, or '-': right-aligned."""
    return bool(NUMERIC_CELL.match(cell.strip()))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _inline_html(text: str, base: Path) -> str:
    def image(m: re.Match) -> str:
        path = base / m.group(2)
        if path.is_file():  # embedded: the file stands alone
            data = base64.b64encode(path.read_bytes()).decode()
            return f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">'
        return html.escape(m.group(0))

    parts, last = [], 0
    for m in IMAGE.finditer(text):
        parts += [_escape_spans(text[last:m.start()]), image(m)]
        last = m.end()
    parts.append(_escape_spans(text[last:]))
    return "".join(parts)


def _escape_spans(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", out)
    return LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', out)


def to_html(markdown: str, base: Path) -> str:
    """One self-contained HTML page; figures referenced relative to `base` are embedded. Text
    columns are left-aligned, numeric ones right-aligned (decided per cell)."""
    body = []
    for block in parse(markdown):
        if isinstance(block, Table):
            head = "".join(f"<th>{_escape_spans(c)}</th>" for c in block.header)
            rows = "".join("<tr>" + "".join(f'<td class="{"num" if is_numeric(c) else "text"}">'
                                            f"{_inline_html(c, base)}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block[0] == "h":
            body.append(f"<h{block[1]}>{_escape_spans(block[2])}</h{block[1]}>")
        elif block[0] == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_html(item, base)}</li>" for item in block[1]) + "</ul>")
        else:
            body.append(f"<p>{_inline_html(block[1], base)}</p>")
    style = ("body{font-family:sans-serif;max-width:80em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.2em .5em}"
             "th,td.text{text-align:left}td.num{text-align:right;white-space:nowrap}img{max-width:100%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>sam-bench report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                 "Δ": r"$\Delta$", "−": "-", "○": r"$\circ$", "×": r"$\times$"}


def _tex(text: str) -> str:
    text = IMAGE.sub(lambda m: m.group(1), LINK.sub(lambda m: m.group(1), text)).replace("**", "").replace("`", "")
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(markdown: str) -> str:
    """Every table as a booktabs tabular under its section heading, and the notes (paragraphs and
    lists) as text around them (needs \\usepackage{booktabs})."""
    out = ["% sam-bench report tables; needs \\usepackage{booktabs}"]
    commands = {1: "section*", 2: "section*", 3: "subsection*"}
    for block in parse(markdown):
        if isinstance(block, Table):
            spec = "".join("r" if block.rows and all(is_numeric(r[k]) for r in block.rows if k < len(r)) else "l"
                           for k in range(len(block.header)))
            out += [r"\begin{tabular}{" + spec + "}", r"\toprule",
                    " & ".join(_tex(c) for c in block.header) + r" \\", r"\midrule"]
            out += [" & ".join(_tex(c) for c in row) + r" \\" for row in block.rows]
            out += [r"\bottomrule", r"\end{tabular}", ""]
        elif block[0] == "h":
            out.append(f"\\{commands.get(block[1], 'paragraph*')}{{{_tex(block[2])}}}")
        elif block[0] == "ul":
            out += [r"\begin{itemize}", *(rf"\item {_tex(item)}" for item in block[1]), r"\end{itemize}", ""]
        elif text := IMAGE.sub("", block[1]).strip():  # figures stay in the HTML / Markdown report
            out += [_tex(text), ""]
    return "\n".join(out) + "\n"


# Metric names counted in units (clicks, objects, images...) rather than fractions of 1.
COUNT_NAMES = ("NoC@*", "NoF@*", "max_*", "*objects*", "images*", "instances*", "*per_image*", "queries",
               "*excluded*", "*clicks*", "*masks*")


def metric_unit(name: str, value: float | int) -> str:
    """fraction (of 1), count, or seconds: what a metrics.json number is measured in."""
    if "seconds" in name:
        return "seconds"
    if any(fnmatch(name, p) for p in COUNT_NAMES) or (isinstance(value, int) and not isinstance(value, bool)):
        return "count"
    return "fraction"


def cell_unit(column: str, cell: str) -> str:
    """Units of a report-table cell: tables print fractions as percentages, the paper's edge
    metrics as .768 fractions, and counts, rates and memory as they are."""
    if any(fnmatch(column, p) for p in COUNT_NAMES) or "NoC" in column or "NoF" in column:
        return "count"
    if "img/s" in column:
        return "images per second"
    if "MiB" in column:
        return "MiB"
    if cell.lstrip("+-−").startswith("."):
        return "fraction"
    return "percent"


def to_csv(markdown: str, entries: dict[str, list[ReportEntry]]) -> str:
    """Every number with its unit: each metric of each result, then each numeric cell of the
    report's tables (an interval cell gives its value, `<column> ci_low` and `<column> ci_high`)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "section", "table_row", "column", "value", "unit"])
    for protocol, items in sorted(entries.items()):
        for e in items:
            for name, value in e.metrics.items():
                if isinstance(value, (int, float)):
                    writer.writerow(["metrics", f"{protocol}/{e.task_dir.parent.name}/{e.dataset}", e.run_label,
                                     name, repr(float(value)), metric_unit(name, value)])
    section = ""
    for block in parse(markdown):
        if isinstance(block, Table):
            for row in block.rows:
                for column, cell in zip(block.header[1:], row[1:]):
                    for suffix, value in _numbers(cell):
                        writer.writerow(["report", section, row[0], column + suffix, value, cell_unit(column, cell)])
        elif block[0] == "h":
            section = block[2]
    return buf.getvalue()


def _numbers(cell: str) -> list[tuple[str, str]]:
    """(column suffix, number): a plain number, both numbers of a "1-click (5-click)" cell, or a
    value with its interval "12.3 [8.1, 15.0]" (a trailing ○ mark is dropped)."""
    cell = cell.replace("−", "-").removesuffix(" ○").replace("+", "")
    if NUMBER.match(cell):
        return [("", cell)]
    m = re.match(r"^(-?\d+(?:\.\d+)?) \((-?\d+(?:\.\d+)?)\)$", cell)
    if m:
        return [("", m.group(1)), ("", m.group(2))]
    m = re.match(r"^(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]$", cell)
    return [("", m.group(1)), (" ci_low", m.group(2)), (" ci_high", m.group(3))] if m else []
