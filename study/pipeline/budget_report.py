"""What a budget grid (:mod:`study.pipeline.budgets`) writes besides its JSON: the report's blocks
(every arm at every budget, each budget's deltas and verdict, the selected table), rendered to
budgets.md and budgets.html from one model (:mod:`study.report.model`), and the figure of
validation and test accuracy against the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIGURE = "budgets.png"


def budget_blocks(summary: dict[str, Any]) -> list[Any]:
    """The report's blocks: the grid (validation / test per budget, the chosen one in bold), each
    budget's deltas and verdict, the figure, then the selected arms table with the rule."""
    from study.report.arms import arms_blocks, delta_text
    from study.report.model import Bullets, FigureBlock, Heading, Para, Table

    budgets = summary["budgets"]
    arms = list(summary["chosen"])
    rows = []
    for arm in arms:
        cells = []
        for e in budgets:
            cell = summary["grid"][str(e)][arm]
            text = f"{_pct(cell['val'])} / {_pct(cell['test'])}"
            cells.append(f"**{text}**" if summary["chosen"][arm] == e else text)
        rows.append([arm, *cells, str(summary["chosen"][arm])])
    numeric = [False] + [True] * (len(budgets) + 1)
    blocks: list[Any] = [
        Heading("Every arm at every budget"),
        Table(
            ["arm", *(f"{_ep(e)}: val / test %" for e in budgets), "chosen (epochs)"],
            rows,
            "Mean over seeds of the best-epoch validation accuracy (which chooses) and of the "
            "test accuracy (which only reports); bold: the budget chosen for the arm.",
            numeric,
        ),
        Table(
            ["arm", *(_ep(e) for e in budgets)],
            [
                [arm, *(delta_text(summary["grid"][str(e)][arm].get("delta")) for e in budgets)]
                for arm in arms[1:]
            ],
            "Δ test accuracy vs real at equal budgets, points (95% CI over seeds and test images; "
            "with one seed, over test images only).",
            [False] + [True] * len(budgets),
        ),
        Bullets([f"{_ep(e)}: {summary['grid'][str(e)]['verdict']}" for e in budgets]),
    ]
    if len(set(summary["models"].values())) > 1:
        blocks.append(
            Para(
                "The best architecture by validation accuracy differs between budgets: "
                + ", ".join(f"{e}: {m}" for e, m in summary["models"].items())
                + "; each arm trains its budget's architecture.",
                "note",
            )
        )
    blocks.append(
        FigureBlock(FIGURE, "Validation and test accuracy against the budget, one line per arm.")
    )
    selected = arms_blocks({"arms": summary["arms"]})
    selected[0] = Heading("Each arm at its chosen budget")
    return blocks + selected


def _ep(epochs: int) -> str:
    return f"{epochs} epoch{'' if epochs == 1 else 's'}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def draw_budgets(summary: dict[str, Any], path: Path) -> None:
    """Mean validation accuracy (which chooses; the chosen budget ringed) and mean test accuracy
    against the budget, one line per arm."""
    from matplotlib.figure import Figure

    from classify.evaluation.figures import save_figure
    from study.report.figures import ARM_MARKERS

    budgets = summary["budgets"]
    arms = list(summary["chosen"])
    longest = max(len(arm) for arm in arms)
    fig = Figure(figsize=(10.0 + min(0.065 * longest, 4.0), 4.0))
    axes = fig.subplots(1, 2, sharex=True)
    for index, arm in enumerate(arms):
        style = {"color": f"C{index % 10}", "marker": ARM_MARKERS[index % len(ARM_MARKERS)],
                 "markerfacecolor": "none", "label": arm}  # fmt: skip
        for ax, key in zip(axes, ("val", "test"), strict=True):
            values = [summary["grid"][str(e)][arm][key] for e in budgets]
            ax.plot(budgets, [100 * v for v in values], "-", **style)
        best = summary["chosen"][arm]
        val = summary["grid"][str(best)][arm]["val"]
        axes[0].plot([best], [100 * val], "o", markersize=13, markerfacecolor="none",
                     color=f"C{index % 10}", alpha=0.6)  # fmt: skip
    seeds = f"mean over {summary['seeds']} seeds" if summary["seeds"] > 1 else "one seed"
    for ax, what in zip(axes, ("validation (chooses; ringed: chosen)", "test (reports)"),
                        strict=True):  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(e) for e in budgets])
        ax.minorticks_off()
        ax.set_xlabel("epochs (budget)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{what}, {seeds}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
