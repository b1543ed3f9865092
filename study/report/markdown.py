"""Render report blocks as Markdown (``report.md``; figures stay PNG files next to it)."""

from __future__ import annotations

from collections.abc import Sequence

from study.report.model import Block, Bullets, FigureBlock, Heading, Para, Table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_lines(block: Table) -> list[str]:
    align = [
        ("---:" if block.numeric[i] else "---") if i < len(block.numeric) else "---"
        for i in range(len(block.headers))
    ]
    lines = ["| " + " | ".join(_md_cell(h) for h in block.headers) + " |"]
    lines.append("| " + " | ".join(align) + " |")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
    return lines + [""] + ([f"*{block.caption}*", ""] if block.caption else [])


def _block_lines(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text, ""]
    if isinstance(block, Para):
        return [f"> **{block.text}**" if block.kind.startswith("verdict") else block.text, ""]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items] + [""]
    if isinstance(block, Table):
        return _table_lines(block)
    if isinstance(block, FigureBlock):
        return [f"![{block.caption}]({block.file})", "", f"*{block.caption}*", ""]
    return []


def render_markdown(title: str, blocks: Sequence[Block], meta: str = "") -> str:
    lines = [f"# {title}", ""] + ([f"*{meta}*", ""] if meta else [])
    for block in blocks:
        lines += _block_lines(block)
    return "\n".join(lines).rstrip() + "\n"
