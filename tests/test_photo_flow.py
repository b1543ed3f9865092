"""Photos with ImageNet models, no run folder: `cli predict / gradcam / attention / explain IMAGE...
--pretrained imagenet | --weights FILE`. Offline: state dicts of randomly initialised torchvision
models stand in for the weights, saved once under torch.hub's file names."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.models import ResNet50_Weights, ViT_B_16_Weights, resnet50, vit_b_16
from typer.testing import CliRunner

RESNET_FILE = "resnet50-11ad3fa6.pth"  # ResNet50_Weights.IMAGENET1K_V2's file name
VIT_FILE = "vit_b_16-c867db91.pth"  # ViT_B_16_Weights.IMAGENET1K_V1's


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME whose hub/checkpoints holds random resnet50 and vit_b_16 state dicts."""
    folder = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(resnet50(weights=None).state_dict(), folder / RESNET_FILE)
    vit = vit_b_16(weights=None)
    torch.nn.init.normal_(vit.heads.head.weight, std=0.02)  # torchvision zeroes it: all ties
    torch.save(vit.state_dict(), folder / VIT_FILE)
    return folder.parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two photos of other sizes than 224 px (so resize and crop matter), a PNG and a JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, suffix) in enumerate([((300, 260), ".png"), ((250, 340), ".jpg")]):
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        ImageDraw.Draw(img).ellipse((40, 50, 200, 210), fill=(200, 40 + 80 * i, 30))
        img.save(folder / f"photo{i}{suffix}")
        paths.append(folder / f"photo{i}{suffix}")
    return paths


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch | None = None, home: Path | None = None):
    from cli import app

    if monkeypatch is not None and home is not None:
        monkeypatch.setenv("TORCH_HOME", str(home))
    return CliRunner().invoke(app, [*args, "--device", "cpu"])


def _ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def _one_error(result: Any, *needles: str) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert all(n in errors[0] for n in needles), errors[0]
    return errors[0]


def _reference(arch: Callable[..., torch.nn.Module], file: Path, weights: Any, photo: Path):
    """torchvision's own model on ``weights.transforms()(photo)``: logits (1 x 1000)."""
    model = arch(weights=None)
    model.load_state_dict(torch.load(file, weights_only=True))
    with Image.open(photo) as img, torch.inference_mode():
        return model.eval()(weights.transforms()(img.convert("RGB"))[None])


def _png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) > 0


# --- predict -------------------------------------------------------------------------------------


def test_predict_with_a_weights_file_gives_torchvision_top3(home: Path, photos: list[Path]) -> None:
    file = home / "hub" / "checkpoints" / RESNET_FILE
    weights = ResNet50_Weights.IMAGENET1K_V2
    result = _cli(["predict", *map(str, photos), "--weights", str(file), "--model", "resnet50",
                   "--json"])  # fmt: skip
    _ok(result)
    got = json.loads(result.stdout)
    assert got["model"] == "resnet50" and len(got["predictions"]) == 2
    categories = weights.meta["categories"]
    for photo, prediction in zip(photos, got["predictions"], strict=True):
        probs = torch.softmax(_reference(resnet50, file, weights, photo), dim=1)[0]
        top = torch.topk(probs, 3)
        assert [p["class"] for p in prediction["top"]] == [categories[i] for i in top.indices]
        assert np.allclose([p["probability"] for p in prediction["top"]], top.values, atol=1e-4)
    table = _ok(_cli(["predict", str(photos[0]), "--weights", str(file), "--top-k", "2"]))
    assert got["predictions"][0]["top"][0]["class"].split()[0] in table


def test_the_library_gives_torchvision_logits_for_both_architectures(
    home: Path, photos: list[Path]
) -> None:
    from classify.pretrained_model import load_imagenet_classifier

    for arch, model, file, weights in [
        (resnet50, "resnet50", RESNET_FILE, ResNet50_Weights.IMAGENET1K_V2),
        (vit_b_16, "vit-b16", VIT_FILE, ViT_B_16_Weights.IMAGENET1K_V1),
    ]:
        path = home / "hub" / "checkpoints" / file
        loaded = load_imagenet_classifier(model, weights_file=path, device="cpu")
        assert loaded.run_dir is None and loaded.class_names == weights.meta["categories"]
        images = loaded.preprocess(photos[:1])
        assert images.dtype == torch.uint8 and images.shape == (1, 3, 224, 224)
        expected = _reference(arch, path, weights, photos[0])
        got = loaded.predict_logits(images)
        scale = expected.abs().max().item()
        assert (got - expected).abs().max().item() < 1e-4 * max(1.0, scale), model


def test_pretrained_imagenet_reads_the_torch_hub_cache(
    home: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached file must be used")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    args = ["predict", str(photos[1]), "--json"]
    cached = _cli([*args, "--pretrained", "imagenet"], monkeypatch, home)
    file = _cli([*args, "--weights", str(home / "hub" / "checkpoints" / RESNET_FILE)])
    assert json.loads(cached.stdout)["predictions"] == json.loads(file.stdout)["predictions"]
    assert "ResNet50_Weights.IMAGENET1K_V2" in json.loads(cached.stdout)["weights"]


# --- gradcam, attention, explain -------------------------------------------------------------------


def test_gradcam_of_photos_labels_rows_with_the_top1_class(
    home: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import classify.explain.gradcam_run as gradcam_run

    seen: dict[str, Any] = {}
    original = gradcam_run.cam_grid

    def spy(tiles: Any, path: Path, row_labels: Any = None, title: str = "") -> Path:
        seen.update(rows=list(row_labels), predicted=[row[0].predicted for row in tiles])
        return original(tiles, path, row_labels=row_labels, title=title)

    monkeypatch.setattr(gradcam_run, "cam_grid", spy)
    monkeypatch.chdir(tmp_path)  # the default output goes under the current folder
    output = _ok(_cli(["gradcam", *map(str, photos), "--model", "resnet50", "--pretrained",
                       "imagenet"], monkeypatch, home))  # fmt: skip
    _png(tmp_path / "reports" / "explain-resnet50" / "gradcam_gradcam.png")
    assert "faithfulness (ROADCombined(20,40,60,80), higher is better):" in output
    assert seen["rows"] == seen["predicted"] and len(seen["rows"]) == 2
    assert set(seen["rows"]) <= set(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def test_attention_of_a_photo_writes_heads_layer_and_rollout(
    home: Path, photos: list[Path], tmp_path: Path
) -> None:
    file = home / "hub" / "checkpoints" / VIT_FILE
    output = _ok(_cli(["attention", str(photos[0]), "--model", "vit-b16", "--weights", str(file),
                       "--out", str(tmp_path)]))  # fmt: skip
    for name in ("attention_layer.png", "attention_rollout.png", "attention_heads_photo0.png"):
        _png(tmp_path / name)
    for view in ("layer", "rollout"):
        assert f"faithfulness of the {view} map (ROADCombined" in output, output


def test_explain_puts_the_vit_and_the_resnet_side_by_side(
    home: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "both.png"
    output = _ok(_cli(["explain", str(photos[1]), "--pretrained", "imagenet", "--out", str(out)],
                      monkeypatch, home))  # fmt: skip
    _png(out)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["models"] == ["vit-b16", "resnet50"] and summary["files"] == [str(photos[1])]
    views = [row["view"] for row in summary["faithfulness"]]
    assert views == ["vit-b16 (gradcam)", "vit-b16 (attention rollout)", "resnet50 (gradcam)"]
    assert all(np.isfinite(row["value"]) for row in summary["faithfulness"])
    assert "Faithfulness on the same 1 photos" in output and "ROADCombined" in output


# --- one-line refusals -----------------------------------------------------------------------------


def test_refusals_are_one_line(
    home: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resnet = str(home / "hub" / "checkpoints" / RESNET_FILE)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    _one_error(_cli(["predict", str(bad), "--weights", resnet]), str(bad), "unreadable image")
    _one_error(_cli(["predict", str(tmp_path / "absent.jpg"), "--weights", resnet]), "not found")
    _one_error(_cli(["gradcam", str(photos[0]), "--model", "vit-tiny", "--pretrained",
                     "imagenet"]), "vit-tiny has no torchvision counterpart")  # fmt: skip
    _one_error(_cli(["attention", str(photos[0]), "--model", "resnet50", "--pretrained",
                     "imagenet"]), "no self-attention")  # fmt: skip
    _one_error(_cli(["predict", "some-run", str(photos[0]), "--model", "resnet50"]),
               "a run brings its own model")  # fmt: skip
    _one_error(_cli(["predict", str(photos[0]), "--pretrained", "imagenet", "--weights", resnet]),
               "use one")  # fmt: skip
    _one_error(_cli(["explain", str(photos[0]), "--weights", resnet]),
               "1 files for 2 models")  # fmt: skip
    ten = tmp_path / "ten.pth"
    state = torch.load(resnet, weights_only=True)
    torch.save({**state, "fc.weight": state["fc.weight"][:10], "fc.bias": state["fc.bias"][:10]},
               ten)  # fmt: skip
    _one_error(_cli(["predict", str(photos[0]), "--weights", str(ten)]), "10 outputs")


def test_missing_weights_offline_name_the_file_and_where_it_goes(
    photos: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def offline(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    empty = tmp_path / "empty"
    for command in ("predict", "gradcam"):
        result = _cli([command, str(photos[0]), "--pretrained", "imagenet"], monkeypatch, empty)
        folder = str(empty / "hub" / "checkpoints")
        _one_error(result, RESNET_FILE, folder, ResNet50_Weights.IMAGENET1K_V2.url)
    result = _cli(["attention", str(photos[0]), "--pretrained", "imagenet"], monkeypatch, empty)
    _one_error(result, VIT_FILE)
