"""``synthesize``: determinism, manifest, refusals, the classifier filter, and the CLI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from augment.fid.standin import RandomConvExtractor
from augment.gan.config import SynthConfig
from augment.gan.trainer import train_gan
from augment.sampling import draw_noise
from augment.synthesize import synthesize
from core.errors import UserError
from core.io import sha256_file

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    make_dataset: Callable[..., Path],
    tiny_gan_config: Callable,
) -> dict[str, Path]:
    """A dataset and two tiny trained GANs: conditional ("cond") and per-class ("pc")."""
    root = tmp_path_factory.mktemp("synth")
    data = make_dataset(root / "data", "colours", train_per_class=16, test_per_class=5)
    runs = root / "runs"
    for name, per_class in (("cond", False), ("pc", True)):
        cfg = tiny_gan_config(data, runs, name=name, per_class_models=per_class, iterations=3,
                              eval_every=3, fid_samples=0)  # fmt: skip
        train_gan(cfg, progress=False)
    return {"data": data, "runs": runs, "root": root}


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cfg(trained: dict[str, Path], out: Path, **kw: object) -> SynthConfig:
    base = dict(gan="cond", per_class=6, out=str(out), runs_dir=str(trained["runs"]),
                device="cpu", batch_size=4, fid=False)  # fmt: skip
    base.update(kw)
    return SynthConfig(**base)


@pytest.mark.parametrize("gan", ["cond", "pc"])
def test_same_seed_gives_identical_pngs(trained: dict[str, Path], tmp_path: Path, gan: str) -> None:
    synthesize(_cfg(trained, tmp_path / "a", gan=gan), progress=False)
    synthesize(_cfg(trained, tmp_path / "b", gan=gan), progress=False)
    synthesize(_cfg(trained, tmp_path / "c", gan=gan, seed=1), progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "red").iterdir())[:2] == [
        "000000.png",
        "000001.png",
    ]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_manifest_records_source_counts_and_fid(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "syn"
    manifest = synthesize(
        _cfg(trained, out, fid=True, per_class=7), progress=False, extractor=RandomConvExtractor()
    ).to_json()
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    run = trained["runs"] / "cond"
    assert manifest["gan_run"] == "cond" and manifest["seed"] == 0
    assert manifest["checkpoint"] == str(run / "best.pt")
    assert manifest["checkpoint_sha256"] == sha256_file(run / "best.pt")
    assert manifest["class_names"] == ["blue", "red"] and manifest["image_size"] == 32
    assert manifest["counts"] == {"blue": 7, "red": 7}
    assert len(list((out / "blue").glob("*.png"))) == 7
    assert manifest["dataset"] == str(trained["data"]) and "torch" in manifest["versions"]
    fid = manifest["fid"]
    assert set(fid["per_class"]) == set(fid["real_vs_real"]) == {"blue", "red"}
    for name in ("blue", "red"):
        assert fid["per_class"][name]["n_a"] == 7 and fid["per_class"][name]["n_b"] == 16
        # the floor uses as many real test images as there are synthetic ones (5 exist)
        assert fid["real_vs_real"][name]["n_a"] == 5
        assert fid["per_class"][name]["fid"] > fid["real_vs_real"][name]["fid"]  # an untrained G
    assert fid["overall"]["n_a"] == 14 and fid["overall"]["n_b"] == 32
    # The other end of the scale: the same architecture untrained, at the same sample sizes.
    assert set(fid["untrained_generator"]) == {"blue", "red"}
    for name in ("blue", "red"):
        chance = fid["untrained_generator"][name]
        assert (chance["n_a"], chance["n_b"]) == (7, 16)
        assert chance["fid"] != fid["per_class"][name]["fid"]
    assert fid["untrained_generator_overall"]["n_a"] == 14
    # Precision / recall / density / coverage on the same features, next to the floor and chance.
    assert (fid["precision_recall_k"], fid["density_coverage_k"]) == (3, 5)
    for score in (*fid["per_class"].values(), fid["overall"], fid["real_vs_real"]["blue"],
                  fid["untrained_generator"]["red"], fid["untrained_generator_overall"]):  # fmt: skip
        assert {"precision", "recall", "density", "coverage"} <= set(score)
        assert all(0 <= score[k] <= 1 for k in ("precision", "recall", "coverage"))
        assert score["density"] >= 0
    assert "truncation" not in manifest  # plain noise
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


class CountingExtractor(RandomConvExtractor):
    """The stand-in extractor, counting the images it is run on."""

    def __init__(self) -> None:
        super().__init__()
        self.images = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images += len(images)
        return super().__call__(images)


def test_untrained_generator_features_are_cached_like_real_ones(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    first, second = CountingExtractor(), CountingExtractor()
    a = synthesize(_cfg(trained, tmp_path / "a", fid=True), progress=False, extractor=first)
    b = synthesize(_cfg(trained, tmp_path / "b", fid=True), progress=False, extractor=second)
    # First run: 12 synthetic + 12 untrained-G + 32 real train + 10 real test (the floor).
    assert first.images == 12 + 12 + 32 + 10
    # Second run, same seed: only the fresh synthetic images go through the network again.
    assert second.images == 12
    assert a.to_json()["fid"] == b.to_json()["fid"]  # cached features give the same scores
    # Another synthesis seed draws another untrained set: no stale hit.
    third = CountingExtractor()
    synthesize(_cfg(trained, tmp_path / "c", fid=True, seed=1), progress=False, extractor=third)
    # (the floor takes all 5 test images per class whatever the seed: still cached)
    assert third.images == 12 + 12


def test_score_per_class_scores_the_first_n_images_at_that_size(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    counting = CountingExtractor()
    manifest = synthesize(_cfg(trained, tmp_path / "n", fid=True, score_per_class=4),
                          progress=False, extractor=counting)  # fmt: skip
    assert manifest.counts is not None and set(manifest.counts.values()) == {6}  # all written
    fid = manifest.fid
    assert fid is not None and fid.per_class is not None and fid.untrained_generator is not None
    for name in manifest.class_names or []:  # 4 synthetic, 4 untrained and 4 test images a class
        assert fid.per_class[name].n_a == fid.untrained_generator[name].n_a == 4
        assert fid.real_vs_real[name].n_a == 4
    # The scored images are the set's first four of each class (the same features as a set of 4).
    first_four = synthesize(_cfg(trained, tmp_path / "four", fid=True, per_class=4),
                            progress=False, extractor=CountingExtractor())  # fmt: skip
    assert first_four.fid is not None
    assert first_four.to_json()["fid"]["per_class"] == manifest.to_json()["fid"]["per_class"]
    assert manifest.options is not None and manifest.options["score_per_class"] == 4
    with pytest.raises(UserError, match="^--score-per-class 1: must be at least 2"):
        synthesize(_cfg(trained, tmp_path / "x", fid=True, score_per_class=1), progress=False)


def test_truncation_shrinks_the_noise_and_is_recorded(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    plain = draw_noise(500, 16, torch.Generator().manual_seed(3))
    assert torch.equal(plain, torch.randn(500, 16, generator=torch.Generator().manual_seed(3)))
    cut = draw_noise(500, 16, torch.Generator().manual_seed(3), truncation=0.5)
    assert cut.abs().max() <= 0.5 and cut.norm(dim=1).mean() < 0.5 * plain.norm(dim=1).mean()
    assert torch.equal(cut, draw_noise(500, 16, torch.Generator().manual_seed(3), truncation=0.5))
    kept = plain.abs() <= 0.5  # components inside the threshold are kept as drawn
    assert torch.equal(cut[kept], plain[kept])

    manifest = synthesize(_cfg(trained, tmp_path / "t", truncation=0.5), progress=False)
    assert manifest.truncation == 0.5 and manifest.to_json()["truncation"] == 0.5
    synthesize(_cfg(trained, tmp_path / "p"), progress=False)
    assert _digest(tmp_path / "t") != _digest(tmp_path / "p")
    with pytest.raises(UserError, match="--truncation 0.01"):
        synthesize(_cfg(trained, tmp_path / "x", truncation=0.01), progress=False)


def test_refuses_existing_output_and_dataset_folder(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "syn"
    synthesize(_cfg(trained, out), progress=False)
    before = _digest(out)
    with pytest.raises(UserError, match="exists"):
        synthesize(_cfg(trained, out, seed=5), progress=False)
    assert _digest(out) == before
    synthesize(_cfg(trained, out, seed=5, overwrite=True), progress=False)
    assert _digest(out) != before
    for inside in (trained["data"] / "train" / "syn", trained["runs"] / "cond" / "syn"):
        with pytest.raises(UserError, match="inside"):
            synthesize(_cfg(trained, inside), progress=False)
        assert not inside.exists()
    with pytest.raises(UserError, match="no GAN run"):
        synthesize(_cfg(trained, tmp_path / "x", gan="missing"), progress=False)


class FakeClassifier:
    """Confident about every other image it is shown; for class ``c`` only while fewer than
    ``limits[c]`` images have been shown in all (so a class can be made to hit the draw cap)."""

    def __init__(self, limits: list[int], class_names: list[str]) -> None:
        self.limits, self.class_names, self.image_size = limits, class_names, 32
        self.run_dir = Path("stand-in")  # records no split: the manifest then records none
        self.seen = 0

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
        index = torch.arange(self.seen, self.seen + len(images))
        self.seen += len(images)
        columns = [(index % 2 == 0) & (index < limit) for limit in self.limits]
        return torch.stack(columns, dim=1).float()


def test_filter_keeps_confident_samples_and_reports_the_cap(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import classify.checkpoint

    fakes: list[FakeClassifier] = []

    def load_classifier(run, which="best", runs_dir="runs", device=None):  # noqa: ANN001, ARG001
        fakes.append(FakeClassifier([10**6, 10**6], ["blue", "red"]))
        return fakes[-1]

    monkeypatch.setattr(classify.checkpoint, "load_classifier", load_classifier)
    manifest = synthesize(
        _cfg(trained, tmp_path / "f", filter_with="clf"), progress=False
    ).to_json()
    assert manifest["counts"] == {"blue": 6, "red": 6}
    assert manifest["filter"]["acceptance_rate"] == {"blue": 0.5, "red": 0.5}
    assert manifest["filter"]["cap_hit"] == []

    def stingy(run, which="best", runs_dir="runs", device=None):  # noqa: ANN001, ARG001
        return FakeClassifier([6, 10**6], ["blue", "red"])  # blue: 3 accepted, then none

    monkeypatch.setattr(classify.checkpoint, "load_classifier", stingy)
    with pytest.warns(UserWarning, match="only 3 of 6"):
        manifest = synthesize(
            _cfg(trained, tmp_path / "g", filter_with="clf", max_draw_factor=3), progress=False
        ).to_json()
    assert manifest["counts"] == {"blue": 3, "red": 6}
    assert manifest["filter"]["drawn"]["blue"] == 18 and manifest["filter"]["cap_hit"] == ["blue"]
    assert len(list((tmp_path / "g" / "blue").glob("*.png"))) == 3

    def wrong_classes(run, which="best", runs_dir="runs", device=None):  # noqa: ANN001, ARG001
        return FakeClassifier([6, 6], ["cat", "dog"])

    monkeypatch.setattr(classify.checkpoint, "load_classifier", wrong_classes)
    with pytest.raises(UserError, match="differ"):
        synthesize(_cfg(trained, tmp_path / "h", filter_with="clf"), progress=False)


class BrightnessClassifier:
    """A stand-in filter whose probability of every class is the image's mean brightness."""

    def __init__(self, class_names: list[str]) -> None:
        self.class_names, self.image_size = class_names, 32
        self.run_dir = Path("stand-in")

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        brightness = images.float().mean(dim=(1, 2, 3)) / 255
        return brightness[:, None].expand(-1, len(self.class_names))


def _pngs(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


def test_oversample_keeps_the_most_confident_of_k_times_the_draws(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from PIL import Image

    import classify.checkpoint

    monkeypatch.setattr(
        classify.checkpoint, "load_classifier",
        lambda *a, **k: BrightnessClassifier(["blue", "red"]),  # noqa: ARG005
    )  # fmt: skip
    # The pool: the same seed's first 3 x 6 draws per class, unfiltered.
    synthesize(_cfg(trained, tmp_path / "pool", per_class=18), progress=False)
    manifest = synthesize(
        _cfg(trained, tmp_path / "top", filter_with="clf", oversample=3), progress=False
    ).to_json()
    for name in ("blue", "red"):
        pool = sorted((tmp_path / "pool" / name).glob("*.png"))
        brightness = [np.asarray(Image.open(p)).mean() for p in pool]
        top = sorted(sorted(range(18), key=lambda i: -brightness[i])[:6])
        assert _pngs(tmp_path / "top" / name) == [pool[i].read_bytes() for i in top]
        kept_min = min(brightness[i] for i in top) / 255
        assert manifest["filter"]["min_kept_confidence"][name] == pytest.approx(kept_min, abs=1e-6)
    assert manifest["counts"] == {"blue": 6, "red": 6}
    assert manifest["filter"]["oversample"] == 3
    assert manifest["filter"]["drawn"] == {"blue": 18, "red": 18}
    assert manifest["filter"]["acceptance_rate"] == {"blue": 1 / 3, "red": 1 / 3}
    assert "min_confidence" not in manifest["filter"]  # ranked, not thresholded
    with pytest.raises(UserError, match="--oversample 2: needs --filter-with"):
        synthesize(_cfg(trained, tmp_path / "bad", oversample=2), progress=False)


def test_cli_synthesize(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app
    from commands.configs import FEATURES_ENV

    monkeypatch.setenv(FEATURES_ENV, "random-conv")  # the stand-in: no option offers it

    out = tmp_path / "cli"
    args = ["synthesize", "--gan", "pc", "--per-class", "3", "--out", str(out), "--runs-dir",
            str(trained["runs"]), "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "real-vs-real" in result.output and "precision/recall/density/coverage" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["per_class_models"] is True and manifest["counts"] == {"blue": 3, "red": 3}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    inside = args[:6] + [str(trained["data"] / "syn")] + args[7:]
    refused = CliRunner().invoke(app, inside)
    assert refused.exit_code == 2 and "inside the dataset" in refused.output
