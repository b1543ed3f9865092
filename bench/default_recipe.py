"""Which optimizer recipe should plain ``cli train`` default to? Run by hand, several datasets.

    .venv/bin/python bench/default_recipe.py [--seeds 0,1] [--out /tmp/default-recipe]
        [--recipes sgd,adamw-2e-3,adamw-1e-3] [--image-size 32 --width 0.25 --epochs 12]

Trains the same ResNet-50 from scratch with each recipe, seed by seed, on two small datasets
written from Fashion-MNIST's IDX files (as ``cli data footwear`` does): ``footwear`` (sandal,
sneaker, ankle boot) and ``tops`` (T-shirt, pullover, dress, coat, shirt: five classes that look
alike, harder), each with 240 training images per class and 500 test images per class. The recipe
is chosen on **validation** accuracy (the best epoch's, 15% of the training images); test accuracy
is printed beside it but never chooses. Every run is an ordinary run folder under ``--out``, so a
re-run skips finished runs.

The size is the quick preset's (32 px, width 0.25) because full-width 64 px ResNet-50 training for
30 epochs takes hours per run on this 2-core machine; the recipes' ranking at full width is an
extrapolation, said so wherever the result is quoted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classify.training.config import TrainConfig  # noqa: E402
from core.footwear import IDX_FILES, find_idx_dir, read_idx  # noqa: E402
from core.io import read_jsonl  # noqa: E402
from core.progress import console  # noqa: E402

DATASETS = {
    "footwear": {5: "sandal", 7: "sneaker", 9: "ankle_boot"},
    "tops": {0: "tshirt", 2: "pullover", 3: "dress", 4: "coat", 6: "shirt"},
}
RECIPES = {
    # TrainConfig's defaults before this bench (SGD stays selectable: --optimizer sgd)
    "sgd": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4},
    # the quick preset's, and TrainConfig's defaults since this bench
    "adamw-2e-3": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
    "adamw-1e-3": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05},
    "sgd-0.02": {"optimizer": "sgd", "lr": 0.02, "weight_decay": 5e-4, "nesterov": True},
}
TRAIN_PER_CLASS, TEST_PER_CLASS = 240, 500


def write_dataset(out: Path, classes: dict[int, str], seed: int = 0) -> Path:
    if (out / "done").is_file():
        return out
    idx = find_idx_dir(None)
    arrays = {key: read_idx(idx / name) for key, name in IDX_FILES.items()}
    rng = np.random.default_rng(seed)
    for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        for label, name in classes.items():
            members = np.sort(rng.permutation(np.flatnonzero(labels == label))[:count])
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in members:
                Image.fromarray(images[i], mode="L").save(folder / f"{split}_{i:05d}.png")
    (out / "done").write_text("ok\n")
    return out


def run(cfg: TrainConfig) -> tuple[float, float]:
    from classify.evaluation.evaluate import evaluate_run
    from classify.training.trainer import train
    from core.evaldir import evaluation_current, read_metrics
    from core.rundir import training_complete

    run_dir = Path(cfg.runs_dir) / cfg.name
    if not training_complete(run_dir, cfg.total_epochs):
        partial = (run_dir / "last.pt").is_file()
        train(cfg, resume=partial, overwrite=not partial, progress=False)
    if not evaluation_current(run_dir):
        evaluate_run(run_dir, "best", device=cfg.device)
    best_val = max(r["val_acc"] for r in read_jsonl(run_dir / "history.jsonl"))
    return best_val, read_metrics(run_dir)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="/tmp/default-recipe")
    parser.add_argument("--recipes", default="sgd,adamw-2e-3,adamw-1e-3")
    parser.add_argument("--datasets", default="footwear,tops")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    table: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for dataset in args.datasets.split(","):
        data = write_dataset(out / "data" / dataset, DATASETS[dataset])
        for recipe in args.recipes.split(","):
            for seed in seeds:
                cfg = replace(
                    TrainConfig(), data=str(data), runs_dir=str(out / "runs"), seed=seed,
                    name=f"{dataset}-{recipe}-s{seed}", model="resnet50-se",
                    image_size=args.image_size, width=args.width, epochs=args.epochs,
                    batch_size=args.batch_size, device="cpu", **RECIPES[recipe],
                )  # fmt: skip
                val, test = run(cfg.validate())
                table.setdefault((dataset, recipe), []).append((val, test))
                console.print(f"{cfg.name}: val {val:.2%} test {test:.2%}", highlight=False)
    console.print("\n| dataset | recipe | val acc % (mean ± sd) | test acc % | seeds |")
    console.print("|---|---|---:|---:|---:|")
    for (dataset, recipe), rows in table.items():
        vals, tests = [100 * v for v, _ in rows], [100 * t for _, t in rows]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        console.print(
            f"| {dataset} | {recipe} | {statistics.mean(vals):.1f} ± {sd(vals):.1f} | "
            f"{statistics.mean(tests):.1f} ± {sd(tests):.1f} | {len(rows)} |",
            highlight=False,
        )


if __name__ == "__main__":
    main()
