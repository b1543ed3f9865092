"""The command line as a whole: ``--help`` imports no torch and answers quickly, every command
module is joined into the app, choices come from the registries and are refused by Click, and the
one preset mechanism lets explicit options win.

No ``from __future__ import annotations`` here: the small Typer app below is annotated with
locally imported option types, which Typer must see as objects, not strings."""

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in a fresh interpreter, then reports (on stderr) whether torch got imported.
PROBE = """
import json, runpy, sys
sys.argv = ["cli", *{args!r}]
try:
    runpy.run_path("cli.py", run_name="__main__")
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print(json.dumps({{"torch": "torch" in sys.modules, "code": code}}), file=sys.stderr)
"""


def _probe(args: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1]), seconds


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["gan-train", "--help"]])
def test_help_imports_no_torch_and_answers_quickly(args: list[str]) -> None:
    (first, seconds), (_, again) = _probe(args), _probe(args)
    assert first == {"torch": False, "code": 0}
    # A loose bound (importing torch alone takes ~3 s here); the faster of two runs, so that a
    # moment of load on a shared machine does not fail it.
    assert min(seconds, again) < 3.0


def test_every_command_module_is_registered() -> None:
    import cli

    registered = {module.__name__ for module in cli.COMMAND_MODULES}
    for path in sorted((ROOT / "commands").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defines_register = any(
            isinstance(node, ast.FunctionDef) and node.name == "register" for node in tree.body
        )
        if defines_register:
            assert f"commands.{path.stem}" in registered, f"{path.name} is not in COMMAND_MODULES"


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--model", "nope"],
        ["train", "--optimizer", "nope"],
        ["train", "--scheduler", "nope"],
        ["train", "--augment", "nope"],
        ["train", "--resize-mode", "nope"],
        ["train", "--cbam-pool-types", "avg,nope"],
        ["train-all", "--data", "x", "--models", "resnet50,nope"],
        ["gan-train", "--loss", "nope"],
        ["gan-train", "--image-size", "48"],
        ["gan-train", "--diffaugment", "color,nope"],
        ["gradcam", "run", "--cam-method", "nope"],
        ["gradcam", "run", "--metric", "nope"],
        ["compare", "a", "b", "--cam-method", "nope"],
        ["attention", "run", "--head-fusion", "nope"],
        ["models", "--stem", "nope"],
        ["pipeline", "--preset", "nope"],
    ],
)
def test_invalid_choices_are_refused_by_click(args: list[str]) -> None:
    from cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output


def test_choices_are_the_registries_keys() -> None:
    from classify import names
    from classify.models import MODEL_REGISTRY, model_names
    from classify.models.cbam import POOLINGS
    from classify.models.vit import VIT_SIZES
    from cli import app

    assert tuple(MODEL_REGISTRY) == names.MODEL_NAMES == tuple(model_names())
    assert tuple(VIT_SIZES) == names.VIT_MODELS
    assert tuple(POOLINGS) == names.CBAM_POOL_TYPES
    # Wide enough that Rich need not fold the list of model names.
    shown = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "2000"}).output
    assert "|".join(names.MODEL_NAMES) in shown


def test_presets_keep_their_values_and_explicit_values_win() -> None:
    from augment.gan.config import GAN_PRESETS, GanConfig
    from classify.training.config import TrainConfig
    from classify.training.presets import CLASSIFIER_PRESETS
    from core.errors import UserError
    from study.pipeline.config import PIPELINE_PRESETS

    assert CLASSIFIER_PRESETS.table == {
        "quick": {"image_size": 32, "width": 0.25, "epochs": 12, "batch_size": 32,
                  "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
        "full": {"image_size": 64, "width": 1.0, "epochs": 40, "batch_size": 64},
        "photo": {"image_size": 224, "width": 1.0, "epochs": 15, "batch_size": 32,
                  "optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.05, "warmup_epochs": 1.0,
                  "label_smoothing": 0.1, "augment": "resized-crop"},
    }  # fmt: skip
    # The GAN presets: quick is the measured configuration (6,000 iterations with the
    # minibatch-std channel; 3,000 without it was under-trained), the others train at 64 px with
    # FID during training; every preset evaluates on a whole number of intervals.
    gan = GAN_PRESETS.table
    assert set(gan) == {"quick", "full", "photo"}
    assert gan["quick"]["iterations"] == 6000 and gan["quick"]["image_size"] == 32
    assert all(p["minibatch_std"] and p["iterations"] % p["eval_every"] == 0 for p in gan.values())
    assert all(gan[k]["image_size"] == 64 and gan[k]["fid_samples"] > 0 for k in ("full", "photo"))
    assert gan["photo"]["iterations"] > gan["full"]["iterations"] > gan["quick"]["iterations"]
    assert PIPELINE_PRESETS == ("quick", "full", "photo")
    photo = CLASSIFIER_PRESETS.apply(TrainConfig(), "photo").validate()
    assert (photo.image_size, photo.learning_rate, photo.decay) == (224, 3e-4, 0.05)
    assert GAN_PRESETS.apply(GanConfig(), "photo").validate().image_size == 64
    cfg = CLASSIFIER_PRESETS.apply(TrainConfig(), "quick", {"epochs": 1, "lr": None})
    assert (cfg.epochs, cfg.lr, cfg.width, cfg.model) == (1, 2e-3, 0.25, "resnet50")
    assert GAN_PRESETS.apply(GanConfig(), None, {"ngf": 8}) == GanConfig(ngf=8)
    for presets in (CLASSIFIER_PRESETS, GAN_PRESETS):
        with pytest.raises(
            UserError, match="--preset 'huge': choose one of quick, full, photo, none"
        ):
            presets.apply(GanConfig(), "huge")


def test_config_from_takes_only_the_options_given() -> None:
    import typer

    from classify.training.config import TrainConfig
    from classify.training.presets import CLASSIFIER_PRESETS
    from commands.configs import config_from
    from commands.options import ClassifierPreset, Data, Epochs, Width

    seen: list[TrainConfig] = []
    app = typer.Typer()

    @app.command()
    def main(
        ctx: typer.Context,
        preset: ClassifierPreset = None,
        data: Data = Path("data/footwear"),
        epochs: Epochs = 30,
        width: Width = 1.0,
    ) -> None:
        seen.append(config_from(TrainConfig, ctx, presets=CLASSIFIER_PRESETS, preset=preset))

    result = CliRunner().invoke(app, ["--preset", "quick", "--epochs", "30", "--data", "d"])
    assert result.exit_code == 0, result.output
    # --epochs 30 was given (the default's value, still explicit): it beats the preset's 12; the
    # width was not, so the preset's 0.25 stays; paths become the config's strings.
    assert (seen[0].epochs, seen[0].width, seen[0].data) == (30, 0.25, "d")
