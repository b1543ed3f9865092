"""`cli data footwear`: write the embedded default dataset; `cli data fashion-mnist`: other
Fashion-MNIST classes in the same layout; `cli data split`: a train/test dataset from a folder with
one sub-folder per class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.options import Overwrite, Progress, Strict, TrainPerClass, Workers
from core.folder_split import FolderSplitConfig
from core.footwear import FASHION_MNIST_CLASSES, FootwearConfig
from core.progress import console

_D = FootwearConfig()
IdxDir = Annotated[
    Path | None, typer.Option(help="Folder with the four Fashion-MNIST *-ubyte.gz files.")
]
Download = Annotated[
    bool, typer.Option(help="Fetch the IDX files with torchvision (needs a network).")
]
_S = FolderSplitConfig(source="", out="")


def footwear_command(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="Output folder (train/<class>/, test/<class>/).")
    ] = Path(_D.out),
    train_per_class: TrainPerClass = _D.train_per_class,
    seed: Annotated[int, typer.Option(help="Seed of the stratified training subset.")] = _D.seed,
    idx_dir: IdxDir = None,
    download: Download = False,
    overwrite: Overwrite = False,
) -> None:
    """Write the embedded default dataset: Fashion-MNIST's footwear as PNGs.

    Its Sandal, Sneaker and Ankle boot images (real photos of shoes, MIT): a seeded small
    training subset and the full 1,000-per-class test set.
    """
    _write(config_of(FootwearConfig, ctx), "footwear dataset", overwrite, download)


def fashion_mnist_command(
    ctx: typer.Context,
    classes: Annotated[
        str,
        typer.Option(
            metavar="<group|name,...>",
            help="Which classes: footwear (sandal, sneaker, ankle_boot), other (the seven that are "
            "not footwear: a source task to pretrain on before --init-from on footwear), all, or "
            "comma-separated names from " + ",".join(FASHION_MNIST_CLASSES.values()) + ".",
        ),
    ] = "other",
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: data/fashion-mnist-<classes>)."),
    ] = None,
    train_per_class: Annotated[
        int,
        typer.Option(
            "--train-per-class", help="Training images per class (at most 6,000, all of them)."
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the stratified training subset.")] = _D.seed,
    idx_dir: IdxDir = None,
    download: Download = False,
    overwrite: Overwrite = False,
) -> None:
    """Write other Fashion-MNIST classes as PNGs, in the same layout as the footwear set.

    A seeded training subset of each class and its full 1,000-image test set. The default, the
    seven classes that are not footwear, is a related but disjoint task: pretrain a classifier on
    it (`cli train --data data/fashion-mnist-other`), then start footwear runs from it with
    --init-from.
    """
    name = classes.replace(",", "-")
    target = out or Path("data") / f"fashion-mnist-{name}"
    cfg = config_of(FootwearConfig, ctx, out=str(target), classes=classes)
    _write(cfg, f"Fashion-MNIST {classes}", overwrite, download)


def _write(cfg: FootwearConfig, what: str, overwrite: bool, download: bool) -> None:
    from core.footwear import MARKER, write_footwear
    from core.io import read_json

    path = write_footwear(cfg, overwrite=overwrite, download=download)
    counts = read_json(path / MARKER)["counts"]
    summary = ", ".join(
        f"{split}: " + " ".join(f"{c}={n}" for c, n in counts[split].items())
        for split in ("train", "test")
    )
    console.print(f"{what} at [bold]{path}[/bold] ({summary})", highlight=False)


def split_command(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SOURCE", help="Folder with one sub-folder of images per class (only read)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder: OUT/train/<class>/, OUT/test/<class>/.")
    ],
    test_fraction: Annotated[
        float, typer.Option(help="Share of each class's images that goes to test/.")
    ] = _S.test_fraction,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = _S.seed,
    link: Annotated[
        bool,
        typer.Option(
            "--link/--copy",
            help="Hard-link the images where the filesystem allows (else copy), or always copy.",
        ),
    ] = _S.link,
    strict: Strict = _S.strict,
    workers: Workers = _S.workers,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier split in OUT.")
    ] = False,
    progress: Progress = True,
) -> None:
    """Split SOURCE/<class>/* into OUT/train/<class>/ and OUT/test/<class>/: stratified per class,
    seeded, SOURCE never written. Byte-identical images (SHA-256) of a class stay on one side, so
    no test image has an exact copy in train/; identical images under different classes go to
    train/. Both are listed in OUT/split-duplicates.txt; OUT/split.json records the split.
    Unreadable images are skipped with a warning (--strict: an error)."""
    from core.folder_split import DUPLICATES_FILE, split_folder
    from core.progress import BarDisplay

    cfg = config_of(FolderSplitConfig, ctx, source=str(source), out=str(out))
    with BarDisplay(enabled=progress) as display:
        record = split_folder(cfg, overwrite=overwrite, task=display.task)
    counts = ", ".join(
        f"{part}: " + " ".join(f"{c}={n}" for c, n in record.counts[part].items())
        for part in ("train", "test")
    )
    how = f"{record.links} hard links, {record.copies} copies"
    console.print(f"split at [bold]{out}[/bold] ({counts}; {how})", soft_wrap=True)
    if record.duplicate_groups or record.label_conflicts:
        console.print(
            f"byte-identical images: {record.duplicate_files} files in "
            f"{record.duplicate_groups} group(s) within a class, each group kept on one side; "
            f"{record.label_conflicts} group(s) under different classes, put in train/; "
            f"{record.across_split} test images have a copy in train/; see "
            f"{out / DUPLICATES_FILE}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("no byte-identical images", highlight=False)


EXAMPLES = """Examples:

cli data footwear
cli data footwear --train-per-class 50 --out data/footwear-50
cli data split photos/ --out data/shoes
cli data fashion-mnist --classes other --train-per-class 1000
"""


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(
        help="Build datasets: the embedded default, or a train/test split of your own images.",
        epilog=EXAMPLES,
        no_args_is_help=True,
    )
    data_app.command("footwear")(user_errors(one_process("data footwear")(footwear_command)))
    data_app.command("fashion-mnist")(
        user_errors(one_process("data fashion-mnist")(fashion_mnist_command))
    )
    data_app.command("split")(user_errors(one_process("data split")(split_command)))
    app.add_typer(data_app, name="data")
