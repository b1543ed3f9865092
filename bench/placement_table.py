"""The SE / CBAM placement table (issue 13) from ``cli train-all`` runs over several seeds.

    for seed in 0 1 2; do
      .venv/bin/python cli.py train-all --data data/footwear --preset quick --seed $seed \\
        --models resnet50,resnet50-se,resnet50-se-pre,resnet50-se-post,resnet50-se-identity \\
        --runs-dir runs/placement/seed$seed --cam-per-class 0
    done
    .venv/bin/python bench/placement_table.py runs/placement/*/models.json

Reads each ``models.json`` (one per seed; several files of the same seed, e.g. SE and CBAM runs
made separately, are merged) and prints one Markdown row per model: test and validation accuracy
as mean ± sample std over seeds, the seeds counted, the parameters at the trained size and at
ImageNet size (1000 classes, 224 px, width 1: the numbers the SE paper's table reports), and the
seconds per epoch as the runs measured them (wall clock, so only comparable between runs made on an
equally loaded machine; bench/train_throughput.py gives the side-by-side cost). Models are listed
in the order first seen. Nothing here is timed or chosen: it only summarises finished runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classify.models import ModelConfig, build_model  # noqa: E402
from classify.models.profile import count_parameters  # noqa: E402


def _mean_std(values: list[float], scale: float = 1.0) -> str:
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def _imagenet_params(model: str) -> str:
    cfg = ModelConfig(name=model, num_classes=1000, image_size=224, width=1.0)
    return f"{count_parameters(build_model(cfg)) / 1e6:.2f}M"


def collect(paths: list[Path]) -> dict[str, dict[int, dict]]:
    """model -> seed -> that run's row of models.json (a later file of the same seed wins)."""
    rows: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in paths:
        table = json.loads(path.read_text())
        for row in table["runs"]:
            rows[row["model"]][int(table["seed"])] = row
    return rows


def markdown(rows: dict[str, dict[int, dict]]) -> str:
    lines = [
        "| model | test acc % | val acc % | seeds | params | params (ImageNet) | s/epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, by_seed in rows.items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        lines.append(
            f"| {model} | {_mean_std([r['test_acc'] for r in runs], 100)}"
            f" | {_mean_std([r['val_acc'] for r in runs], 100)} | {len(runs)}"
            f" | {runs[0]['params']:,} | {_imagenet_params(model)}"
            f" | {statistics.fmean(r['seconds_per_epoch'] for r in runs):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=Path, help="models.json files of train-all")
    args = parser.parse_args()
    print(markdown(collect(args.tables)))


if __name__ == "__main__":
    main()
