"""The report's document model: the blocks a report is made of, and how numbers are written in it.

A report is a list of small blocks (heading, paragraph, bullets, table, figure) that the Markdown
and HTML renderers (:mod:`study.report.markdown`, :mod:`study.report.html`) both turn into text, so
the two files can never disagree. The formatters below are the only way a number enters a block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# --- blocks -------------------------------------------------------------------------------------


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    kind: str = ""  # "" | "verdict-better" | "verdict-worse" | "verdict-none" | "note"


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: list[bool] = field(default_factory=list)  # right-align these columns


@dataclass
class FigureBlock:
    file: str  # PNG name relative to the report folder
    caption: str


Block = Heading | Para | Bullets | Table | FigureBlock


# --- number formatting --------------------------------------------------------------------------

MISSING = "–"  # shown for a number that is absent, NaN or infinite


def is_number(x: Any) -> bool:
    """A finite int or float (not a bool): something a formatter can write."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pct(x: float | None) -> str:
    return MISSING if not is_number(x) else f"{100 * x:.2f}%"


def pts(x: float | None) -> str:
    """A difference of two proportions in percentage points."""
    return MISSING if not is_number(x) else f"{100 * x:+.2f} pts"


def num(x: float | None, digits: int = 4) -> str:
    return MISSING if not is_number(x) else f"{x:.{digits}f}"


def pval(p: float | None) -> str:
    if not is_number(p):
        return MISSING
    return "< 1e-6" if p < 1e-6 else f"{p:.3g}"


def mean_sd(entry: dict[str, Any], scale: float = 100.0, unit: str = "%") -> str:
    """``{"mean": m, "std": s}`` as ``"m ± s%"`` (scaled, two decimals); ``"m%"`` alone when the
    std is None (one value: no spread to show)."""
    if not is_number(entry.get("std")):
        return f"{scale * entry['mean']:.2f}{unit}"
    return f"{scale * entry['mean']:.2f} ± {scale * entry['std']:.2f}{unit}"
