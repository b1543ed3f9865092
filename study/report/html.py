"""Render report blocks as one self-contained HTML page (``report.html``): inline CSS, figures
embedded as base64 PNGs, no scripts, so the file can be mailed or archived on its own."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from study.report.model import Block, Bullets, FigureBlock, Heading, Para, Table

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  max-width: 1120px; margin: 2rem auto; padding: 0 1.2rem; color: #1f2328; line-height: 1.5; }
h1 { font-size: 1.7rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #eaeef2; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
code { background: #f3f4f6; padding: .05rem .3rem; border-radius: 4px; font-size: .92em; }
table { border-collapse: collapse; margin: .6rem 0 .2rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .65rem; }
th { background: #f6f8fa; text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.caption { color: #57606a; font-size: .85rem; margin: .1rem 0 1rem; max-width: 60rem; }
.verdict { padding: .8rem 1rem; border-radius: 6px; font-weight: 600; border-left: 6px solid; }
.verdict-better { background: #e9f7ee; border-color: #1a7f37; }
.verdict-worse { background: #fdecea; border-color: #c62828; }
.verdict-none { background: #f3f4f6; border-color: #8c959f; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: .85rem; margin-top: .3rem; }
.meta { color: #57606a; font-size: .85rem; }
"""


def _inline(text: str) -> str:
    """HTML-escape, then turn the two Markdown marks used in the content (`code`, **bold**)."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _para(block: Para) -> str:
    cls = f"verdict {block.kind}" if block.kind.startswith("verdict") else block.kind
    return f'<p class="{cls}">{_inline(block.text)}</p>' if cls else f"<p>{_inline(block.text)}</p>"


def _table(block: Table) -> list[str]:
    def cell(tag: str, text: str, i: int) -> str:
        cls = ' class="num"' if i < len(block.numeric) and block.numeric[i] else ""
        return f"<{tag}{cls}>{_inline(text)}</{tag}>"

    head = "".join(cell("th", h, i) for i, h in enumerate(block.headers))
    rows = "".join(
        "<tr>" + "".join(cell("td", c, i) for i, c in enumerate(row)) + "</tr>"
        for row in block.rows
    )
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"]
    if block.caption:
        out.append(f'<p class="caption">{_inline(block.caption)}</p>')
    return out


def _figure(block: FigureBlock, folder: Path) -> list[str]:
    """The figure with its PNG embedded; nothing when the file is missing."""
    path = Path(folder) / block.file
    if not path.is_file():
        return []
    return [
        f'<figure><img src="{_png_data_uri(path)}" alt="{html.escape(block.caption)}">'
        f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
    ]


def _block_html(block: Block, folder: Path) -> list[str]:
    if isinstance(block, Heading):
        return [f"<h{block.level}>{_inline(block.text)}</h{block.level}>"]
    if isinstance(block, Para):
        return [_para(block)]
    if isinstance(block, Bullets):
        return ["<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, FigureBlock):
        return _figure(block, folder)
    return []


def render_html(title: str, blocks: Sequence[Block], folder: Path, meta: str = "") -> str:
    """A single HTML file: figures from ``folder`` embedded as base64 PNGs."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    if meta:
        body.append(f'<p class="meta">{_inline(meta)}</p>')
    for block in blocks:
        body += _block_html(block, folder)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
