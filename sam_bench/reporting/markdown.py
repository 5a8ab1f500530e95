"""Markdown building blocks shared by every task's report section."""
from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".1f") -> str:
    """A DataFrame as a GitHub Markdown table (index as first column), missing values as '-'."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in frame.iterrows():
        cells = [str(idx)]
        for value in row:
            if value is None or (isinstance(value, float) and pd.isna(value)):
                cells.append("-")
            elif isinstance(value, (int, float)):
                cells.append(format(value, floatfmt))
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
