"""Initial weights: torchvision's ImageNet weights (offline: state dicts of randomly initialised
torchvision models saved here), local --weights files, --init-from a run, the input normalisation
inside the model, and --freeze-backbone-epochs."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.models import ResNet50_Weights, ViT_B_16_Weights, resnet18, resnet50, vit_b_16
from typer.testing import CliRunner

from classify.models import ModelConfig, build_model
from classify.models.hub import DOWNLOAD_TIMEOUT_S, read_state_dict
from classify.models.input_norm import IMAGENET_MEAN, IMAGENET_STD, InputNorm
from classify.training.config import TrainConfig
from classify.training.init_weights import WeightsInit, load_source, with_source_defaults
from classify.training.run import model_config_of
from core.data import to_model_input
from core.errors import UserError
from core.io import load_checkpoint, read_json

RESNET_FILE = "resnet50-11ad3fa6.pth"  # ResNet50_Weights.IMAGENET1K_V2's file name
VIT_FILE = "vit_b_16-c867db91.pth"


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random torchvision resnet50 state dict, under torch.hub's name in a TORCH_HOME layout."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(resnet50(weights=None).state_dict(), folder / RESNET_FILE)
    return folder / RESNET_FILE


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("colours"), "colours", 4, 1)


def _images(low: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, 256, (1, 3, 240, 250), generator=g, dtype=torch.uint8)


def _ours(cfg: TrainConfig, num_classes: int) -> tuple[torch.nn.Module, dict]:
    """The trainer's path: source read, model config, seeded build, transfer."""
    init = WeightsInit(source=load_source(cfg, progress=False))
    model = build_model(init.model_config(model_config_of(cfg, num_classes)))
    info = init.apply(model, [str(i) for i in range(num_classes)])
    return model.eval(), info


def _compare(reference: torch.nn.Module, ours: torch.nn.Module, weights: object) -> None:
    """Same logits after the weights' own transforms (our path: uint8 resized and cropped as they
    do, then [-1, 1], then the model's ImageNet normalisation). Pixels >= 64 convert to [-1, 1]
    and back exactly in float32, so those logits agree bit for bit; darker ones differ by an ulp
    of the [-1, 1] value, ~1e-7 of the logits."""
    transforms = weights.transforms()  # type: ignore[attr-defined]
    for low in (64, 0):
        images = _images(low)
        resized = TF.resize(images, transforms.resize_size, transforms.interpolation,
                            antialias=transforms.antialias)  # fmt: skip
        cropped = TF.center_crop(resized, transforms.crop_size)
        with torch.inference_mode():
            expected = reference(transforms(images))
            got = ours(to_model_input(cropped))
        diff = (got - expected).abs().max().item()
        scale = max(1.0, expected.abs().max().item())
        assert diff < (1e-5 if low == 64 else 1e-6 * scale), (low, diff, scale)
        assert expected.abs().max() > 0


def test_imagenet_statistics_are_the_weights_own() -> None:
    for weights in (ResNet50_Weights.IMAGENET1K_V2, ViT_B_16_Weights.IMAGENET1K_V1):
        transforms = weights.transforms()
        assert tuple(transforms.mean) == IMAGENET_MEAN and tuple(transforms.std) == IMAGENET_STD
        assert transforms.crop_size == [224]
    assert ModelConfig.from_dict({"name": "resnet50"}).input_norm == "none"  # old checkpoints
    model = build_model(ModelConfig(input_norm="imagenet", image_size=32, width=0.125))
    assert isinstance(model.input_norm, InputNorm)
    assert "input_norm.mean" not in model.state_dict()  # torchvision's keys, nothing more


def test_resnet50_weights_give_torchvision_logits(resnet_file: Path) -> None:
    reference = resnet50(weights=None)
    reference.load_state_dict(torch.load(resnet_file, weights_only=True))
    cfg = TrainConfig(model="resnet50", weights=str(resnet_file), image_size=224)
    ours, info = _ours(cfg, 1000)
    assert ours.stem_type == "imagenet" and not info["head_replaced"]
    assert info["loaded_tensors"] == len(reference.state_dict())
    _compare(reference.eval(), ours, ResNet50_Weights.IMAGENET1K_V2)


def test_vit_b16_weights_give_torchvision_logits(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = vit_b_16(weights=None)
    torch.nn.init.normal_(reference.heads.head.weight, std=0.02)  # torchvision zeroes it
    torch.save(reference.state_dict(), tmp_path / VIT_FILE)
    cfg = TrainConfig(model="vit-b16", weights=str(tmp_path / VIT_FILE), image_size=224)
    ours, info = _ours(cfg, 1000)
    assert (ours.patch_size, ours.depth, ours.num_heads, ours.hidden_dim) == (16, 12, 12, 768)
    assert not info["head_replaced"] and info["new_tensors"] == 0
    _compare(reference.eval(), ours, ViT_B_16_Weights.IMAGENET1K_V1)
    # Another image size: torchvision's interpolate_embeddings resizes the position embeddings.
    small, _ = _ours(
        TrainConfig(model="vit-b16", weights=str(tmp_path / VIT_FILE), image_size=64), 3
    )
    positions = small.state_dict()["encoder.pos_embedding"]
    assert positions.shape == (1, 4 * 4 + 1, 768)
    assert torch.equal(positions[:, 0], reference.encoder.pos_embedding[:, 0].detach())


@pytest.mark.parametrize("model", ["resnet50-se", "resnet50-cbam", "resnet50-se-pre"])
def test_attention_variants_take_every_backbone_tensor(
    model: str, resnet_file: Path, recwarn: pytest.WarningsRecorder
) -> None:
    state = torch.load(resnet_file, weights_only=True)
    ours, info = _ours(TrainConfig(model=model, weights=str(resnet_file), image_size=224), 3)
    mine = ours.state_dict()
    backbone = [k for k in state if not k.startswith("fc.")]
    assert all(torch.equal(mine[k], state[k]) for k in backbone)
    gates = [k for k in mine if ".attn." in k]
    assert gates and info["new_tensors"] == len(gates) + 2  # the gates and the new fc
    assert mine["fc.weight"].shape == (3, 2048) and info["head_replaced"]
    assert any("1000-class head (fc) is replaced by a new 3-class one" in str(w.message)
               for w in recwarn)  # fmt: skip


# --- bad files: one line each -----------------------------------------------------------------


class _Code:
    def __reduce__(self) -> tuple:
        return (print, ("this would run on load",))


def _bad_files(folder: Path, resnet_file: Path) -> dict[str, tuple[Path, str]]:
    state = torch.load(resnet_file, weights_only=True)
    files: dict[str, tuple[object, str]] = {
        "a list": ([torch.zeros(1)], "not a state dict"),
        "code": ({"conv1.weight": _Code()}, "pickled objects other than tensors"),
        "missing": ({k: v for k, v in state.items() if k != "layer4.2.conv3.weight"},
                    "1 of its tensors missing, e.g. 'layer4.2.conv3.weight'"),
        "extra": ({**state, "extra.weight": torch.zeros(1)}, "1 unknown, e.g. 'extra.weight'"),
        "resnet18": (resnet18(weights=None).state_dict(), "not a torchvision resnet50 state dict"),
        "ours": ({"format": "shoegan-classifier/1", "model": {}}, "--init-from"),
    }  # fmt: skip
    out = {}
    for name, (content, match) in files.items():
        torch.save(content, folder / f"{name}.pth")
        out[name] = (folder / f"{name}.pth", match)
    (folder / "text.pth").write_text("not a torch file")
    out["text"] = (folder / "text.pth", "not a readable PyTorch file")
    out["absent"] = (folder / "absent.pth", "file not found")
    return out


def test_bad_weight_files_are_one_line_errors(
    tmp_path: Path, resnet_file: Path, colours: Path
) -> None:
    from cli import app

    for name, (path, match) in _bad_files(tmp_path, resnet_file).items():
        with pytest.raises(UserError) as err:
            _ours(TrainConfig(weights=str(path), image_size=64), 3)
        assert match in str(err.value) and "\n" not in str(err.value), name
        if name in ("code", "resnet18", "text"):
            out = CliRunner().invoke(app, ["train", "--data", str(colours), "--runs-dir",
                                           str(tmp_path / "runs"), "--weights", str(path),
                                           "--image-size", "32", "--no-progress"])  # fmt: skip
            errors = [line for line in out.output.splitlines() if line.startswith("error:")]
            assert out.exit_code == 2 and len(errors) == 1 and match in errors[0], out.output
    assert not (tmp_path / "runs" / "run").exists()  # refused before the run folder is made


def test_refusals(resnet_file: Path) -> None:
    for bad, match in [
        ({"pretrained": "imagenet", "weights": str(resnet_file)}, "use one"),
        ({"freeze_backbone_epochs": 1}, "needs initial weights"),
        ({"pretrained": "imagenet", "freeze_backbone_epochs": 40}, "at most --epochs"),
    ]:
        with pytest.raises(UserError, match=match):
            TrainConfig(**bad).validate()  # type: ignore[arg-type]
    for bad, match in [
        ({"model": "vit-tiny"}, "no torchvision counterpart"),
        ({"width": 0.5}, "drop --width"),
        ({"model": "vit-b16", "patch_size": 8}, "ViT-B/16 has --patch-size 16"),
    ]:
        with pytest.raises(UserError, match=match):
            load_source(TrainConfig(pretrained="imagenet", **bad))  # type: ignore[arg-type]


# --- torch.hub: the cache and the offline error ------------------------------------------------


def test_offline_missing_weights_name_file_folder_and_url(
    tmp_path: Path, colours: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app

    seen = {}

    def offline(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        seen.update(url=url, hash=hash_prefix, timeout=socket.getdefaulttimeout())
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    for model, name, weights in [("resnet50-cbam", RESNET_FILE, ResNet50_Weights.IMAGENET1K_V2),
                                 ("vit-b16", VIT_FILE, ViT_B_16_Weights.IMAGENET1K_V1)]:  # fmt: skip
        out = CliRunner().invoke(app, ["train", "--data", str(colours), "--runs-dir",
                                       str(tmp_path / "runs"), "--model", model,
                                       "--pretrained", "imagenet", "--no-progress"])  # fmt: skip
        errors = [line for line in out.output.splitlines() if line.startswith("error:")]
        assert out.exit_code == 2 and len(errors) == 1, out.output
        folder = str(tmp_path / "empty" / "hub" / "checkpoints")
        assert name in errors[0] and folder in errors[0] and weights.url in errors[0]
        assert seen == {"url": weights.url, "hash": name.split("-")[1].split(".")[0],
                        "timeout": DOWNLOAD_TIMEOUT_S}  # fmt: skip
    assert not (tmp_path / "runs" / "run").exists() and socket.getdefaulttimeout() is None


def _train(args: list[str]) -> str:
    from cli import app

    out = CliRunner().invoke(app, ["train", "--device", "cpu", "--batch-size", "3",
                                   "--no-progress", *args])  # fmt: skip
    assert out.exit_code == 0, out.output
    return out.output


def test_pretrained_from_the_cache_trains_and_is_recorded(
    tmp_path: Path, colours: Path, resnet_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached file must be used")

    monkeypatch.setenv("TORCH_HOME", str(resnet_file.parents[2]))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    output = _train(["--data", str(colours), "--runs-dir", str(tmp_path), "--name", "in1k",
                     "--pretrained", "imagenet", "--image-size", "32", "--epochs", "1"])  # fmt: skip
    assert "1000-class head (fc) is replaced by a new 2-class one" in output
    assert "ImageNet stem" in output  # forced at 32 px, and said
    config = read_json(tmp_path / "in1k" / "config.json")
    assert config["train"]["pretrained"] == "imagenet"
    assert config["model"]["input_norm"] == "imagenet" and config["model"]["stem"] == "imagenet"
    assert config["model"]["pretrained"] == "torchvision:ResNet50_Weights.IMAGENET1K_V2"
    assert config["init"]["transforms"]["crop_size"] == [224] and config["init"]["head_replaced"]

    from classify.checkpoint import load_classifier

    loaded = load_classifier(tmp_path / "in1k")
    assert isinstance(loaded.model.input_norm, InputNorm)
    assert torch.isfinite(loaded.predict_logits(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))).all()


def test_weights_options_imply_their_sizes(
    tmp_path: Path, colours: Path, resnet_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unless given, width and image size are the weights' (not the default preset's)."""
    import classify.training.trainer
    from cli import app

    seen: list[TrainConfig] = []
    monkeypatch.setattr(classify.training.trainer, "train", lambda cfg, **_: seen.append(cfg))
    base = ["train", "--data", str(colours), "--runs-dir", str(tmp_path), "--weights",
            str(resnet_file)]  # fmt: skip
    for extra, size in [([], 224), (["--image-size", "96"], 96)]:
        assert CliRunner().invoke(app, [*base, *extra]).exit_code == 0
        assert (seen[-1].width, seen[-1].image_size) == (1.0, size)
    cfg = TrainConfig(model="vit-b16", pretrained="imagenet", width=0.25, image_size=32)
    assert with_source_defaults(cfg, {"image_size"}).image_size == 32


# --- training from weights: the frozen epochs, --init-from ---------------------------------------


def test_weights_file_with_frozen_backbone_then_everything(
    tmp_path: Path, colours: Path, resnet_file: Path
) -> None:
    state = read_state_dict(resnet_file)
    args = ["--data", str(colours), "--runs-dir", str(tmp_path), "--name", "w", "--weights",
            str(resnet_file), "--image-size", "32", "--freeze-backbone-epochs", "1"]  # fmt: skip
    _train([*args, "--epochs", "1"])
    after_one = load_checkpoint(tmp_path / "w" / "last.pt")["model"]
    backbone = [k for k in state if not k.startswith("fc.")]
    assert all(torch.equal(after_one[k], state[k]) for k in backbone)  # BN statistics too
    assert after_one["fc.weight"].shape == (2, 2048)
    _train(["--runs-dir", str(tmp_path), "--name", "w", "--resume", "--epochs", "2"])
    after_two = load_checkpoint(tmp_path / "w" / "last.pt")["model"]
    assert not torch.equal(after_two["conv1.weight"], state["conv1.weight"])
    assert not torch.equal(after_two["bn1.running_mean"], state["bn1.running_mean"])
    assert read_json(tmp_path / "w" / "config.json")["init"]["source"] == "file"


def test_init_from_a_run_with_other_classes(
    tiny_run: tuple[Path, Path], tmp_path: Path, colours: Path
) -> None:
    runs, _ = tiny_run
    source = load_checkpoint(runs / "tiny" / "best.pt")["model"]
    args = ["--data", str(colours), "--runs-dir", str(tmp_path), "--init-from",
            str(runs / "tiny")]  # fmt: skip
    output = _train([*args, "--name", "t", "--epochs", "1", "--freeze-backbone-epochs", "1"])
    assert "the classifier head (fc) is replaced by a new 2-class one" in output
    weights = load_checkpoint(tmp_path / "t" / "last.pt")["model"]
    assert all(torch.equal(weights[k], v) for k, v in source.items() if not k.startswith("fc."))
    assert weights["fc.weight"].shape[0] == 2
    config = read_json(tmp_path / "t" / "config.json")
    assert (config["train"]["width"], config["train"]["image_size"]) == (0.125, 32)  # the run's
    assert config["init"]["source"] == "run"

    from cli import app

    for extra, match in [(["--width", "0.25"], "--width 0.125 (this run: 0.25)"),
                         (["--model", "resnet50-se"], "--model resnet50 (this run: resnet50-se)")]:  # fmt: skip
        out = CliRunner().invoke(app, ["train", *args, "--name", "x", *extra, "--no-progress"])
        errors = [line for line in out.output.splitlines() if line.startswith("error:")]
        assert out.exit_code == 2 and len(errors) == 1 and match in errors[0], out.output


def test_every_classifier_of_a_study_starts_from_the_weights_given_to_the_pipeline(
    tmp_path: Path,
) -> None:
    from cli import app
    from study.pipeline.config import PipelineConfig
    from study.pipeline.plan import classifier_base

    base = classifier_base(PipelineConfig(classifier={"pretrained": "imagenet"}), tmp_path, 3)
    assert (base.pretrained, base.width, base.image_size, base.seed) == ("imagenet", 1.0, 224, 3)
    given = PipelineConfig(
        classifier={"weights": "w.pt", "image_size": 96, "freeze_backbone_epochs": 2}
    )
    base = classifier_base(given, tmp_path, 0)
    assert (base.weights, base.width, base.image_size, base.freeze_backbone_epochs) == (
        "w.pt",
        1.0,
        96,
        2,
    )
    plain = classifier_base(PipelineConfig(), tmp_path, 0)
    assert (plain.pretrained, plain.width, plain.image_size) == ("none", 0.25, 32)  # quick preset
    help_text = CliRunner().invoke(app, ["pipeline", "--help"], env={"COLUMNS": "200"}).output
    assert "--pretrained" in help_text and "--freeze-backbone-epochs" in help_text


def test_a_study_starts_from_a_run_of_ours_and_refuses_other_models(
    tiny_run: tuple[Path, Path], tmp_path: Path, colours: Path
) -> None:
    from cli import app
    from study.pipeline.config import PipelineConfig
    from study.pipeline.plan import classifier_base

    runs, _ = tiny_run
    source = str(runs / "tiny")
    base = classifier_base(PipelineConfig(classifier={"init_from": source}), tmp_path, 2)
    tiny = read_json(runs / "tiny" / "config.json")["model"]
    assert (base.init_from, base.model, base.width, base.image_size, base.seed) == (
        source, tiny["name"], tiny["width"], tiny["image_size"], 2)  # fmt: skip
    result = CliRunner().invoke(
        app, ["pipeline", "--data", str(colours), "--runs-dir", str(tmp_path / "r"),
              "--init-from", source, "--models", "resnet50,resnet50-se", "--device", "cpu"],
    )  # fmt: skip
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert f"a {tiny['name']} run, whose weights fit no other model" in errors[0]
    assert not any((tmp_path / "r").glob("*/config.json"))  # refused before any training


def test_train_all_starts_every_model_from_the_weights_at_their_size(
    tmp_path: Path, colours: Path, resnet_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import classify.training.train_all
    from cli import app

    seen: list[TrainConfig] = []
    monkeypatch.setattr(
        classify.training.train_all, "train_all", lambda cfg, *_: seen.append(cfg) or {"runs": []}
    )
    base = ["train-all", "--data", str(colours), "--runs-dir", str(tmp_path), "--models",
            "resnet50,resnet50-se", "--weights", str(resnet_file), "--freeze-backbone-epochs", "2"]  # fmt: skip
    for extra, size in [([], 224), (["--image-size", "48"], 48)]:
        CliRunner().invoke(app, [*base, *extra])
        cfg = seen[-1]
        assert (cfg.weights, cfg.width, cfg.image_size) == (str(resnet_file), 1.0, size)
        assert cfg.freeze_backbone_epochs == 2


def test_pipeline_options_reach_every_classifier(
    tmp_path: Path, colours: Path, monkeypatch: pytest.MonkeyPatch, tiny_run: tuple[Path, Path]
) -> None:
    import study.pipeline.runner
    from cli import app
    from study.pipeline.plan import classifier_base

    seen: list = []

    def spy(cfg: object, dist: object = None) -> dict:
        seen.append(cfg)
        raise KeyboardInterrupt

    monkeypatch.setattr(study.pipeline.runner, "run_pipeline", spy)
    source = str(tiny_run[0] / "tiny")
    args = ["pipeline", "--data", str(colours), "--runs-dir", str(tmp_path), "--lr", "5e-4",
            "--init-from", source, "--freeze-backbone-epochs", "2", "--epochs", "7"]  # fmt: skip
    CliRunner().invoke(app, args)
    assert seen[-1].classifier == {"lr": 5e-4, "init_from": source, "freeze_backbone_epochs": 2,
                                   "epochs": 7}  # fmt: skip
    base = classifier_base(seen[-1], colours, 1)
    got = (base.lr, base.init_from, base.freeze_backbone_epochs, base.epochs)
    assert got == (5e-4, source, 2, 7)
