"""`cli data footwear`: write the embedded default dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.options import Overwrite, TrainPerClass
from core.footwear import FootwearConfig
from core.progress import console

_D = FootwearConfig()


def footwear_command(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="Output folder (train/<class>/, test/<class>/).")
    ] = Path(_D.out),
    train_per_class: TrainPerClass = _D.train_per_class,
    seed: Annotated[int, typer.Option(help="Seed of the stratified training subset.")] = _D.seed,
    idx_dir: Annotated[
        Path | None, typer.Option(help="Folder with the four Fashion-MNIST *-ubyte.gz files.")
    ] = None,
    download: Annotated[
        bool, typer.Option(help="Fetch the IDX files with torchvision (needs a network).")
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Write Fashion-MNIST's Sandal, Sneaker and Ankle boot images (real photos of shoes, MIT) as PNGs:
    a seeded small training subset and the full 1,000-per-class test set."""
    from core.footwear import MARKER, write_footwear
    from core.io import read_json

    cfg = config_of(FootwearConfig, ctx)
    path = write_footwear(cfg, overwrite=overwrite, download=download)
    counts = read_json(path / MARKER)["counts"]
    summary = ", ".join(
        f"{split}: " + " ".join(f"{c}={n}" for c, n in counts[split].items())
        for split in ("train", "test")
    )
    console.print(f"footwear dataset at [bold]{path}[/bold] ({summary})")


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Build the embedded default dataset.", no_args_is_help=True)
    data_app.command("footwear")(user_errors(one_process("data footwear")(footwear_command)))
    app.add_typer(data_app, name="data")
