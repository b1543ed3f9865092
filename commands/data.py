"""`cli data footwear`: write the embedded default dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from commands.common import user_errors
from core.footwear import FootwearConfig
from core.progress import console

_D = FootwearConfig()


def footwear_command(
    out: Path = typer.Option(Path(_D.out), help="Output folder (train/<class>/, test/<class>/)."),
    train_per_class: int = typer.Option(_D.train_per_class, help="Training images per class."),
    seed: int = typer.Option(_D.seed, help="Seed of the stratified training subset."),
    idx_dir: Path | None = typer.Option(
        None, help="Folder with the four Fashion-MNIST *-ubyte.gz files."
    ),
    download: bool = typer.Option(
        False, help="Fetch the IDX files with torchvision (needs a network)."
    ),
    overwrite: bool = typer.Option(
        False, help="Replace an existing footwear set made with other settings."
    ),
) -> None:
    """Write Fashion-MNIST's Sandal, Sneaker and Ankle boot images (real photos of shoes, MIT) as PNGs:
    a seeded small training subset and the full 1,000-per-class test set."""
    from core.footwear import MARKER, write_footwear
    from core.io import read_json

    cfg = FootwearConfig(str(out), train_per_class, seed, str(idx_dir) if idx_dir else None)
    path = write_footwear(cfg, overwrite=overwrite, download=download)
    counts = read_json(path / MARKER)["counts"]
    summary = ", ".join(
        f"{split}: " + " ".join(f"{c}={n}" for c, n in counts[split].items())
        for split in ("train", "test")
    )
    console.print(f"footwear dataset at [bold]{path}[/bold] ({summary})")


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Build the embedded default dataset.", no_args_is_help=True)
    data_app.command("footwear")(user_errors(footwear_command))
    app.add_typer(data_app, name="data")
