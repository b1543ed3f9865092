"""FID/KID and precision/recall/density/coverage of a synthetic set, read the way a user should read
it (the manifest's "fid").

Per class, the synthetic images are scored against the real training images of that class, next to
two ends of the scale at the same sample sizes (FID is biased upwards at a few hundred images, so
only scores at equal counts compare): the "real-vs-real floor", real test vs real training images
of the class with as many test images as synthetic ones (capped by the test set), i.e. what real
data scores; and an untrained generator of the same architecture at initialisation. FID is Heusel
et al. 2017, KID Binkowski et al. 2018 (unbiased), both through :mod:`augment.fid`; precision and
recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020) come from the same
InceptionV3 features (:mod:`augment.fid.prdc`), the real images as the reference set, so mode
collapse shows as low recall and coverage. The untrained generator draws its noise as the
synthetic set did (with the same truncation and standing statistics); its images are deterministic
for a seed, so their features are cached by pixels like the real images' and a second
``synthesize`` pays only for the new synthetic set.

:func:`load_references` decodes the real images and samples the untrained generator;
:func:`score_set` turns features into the typed :class:`core.manifest.FidScores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from augment.fid.prdc import DENSITY_COVERAGE_K, PRECISION_RECALL_K, prdc
from augment.gan.config import SynthConfig
from augment.gan.evaluate import class_features, features, fid_kid_dict
from augment.gan.models import build_generator
from augment.sampling import LoadedGan, class_generator, class_images, sampler
from core.data import ImageTensors, load_samples, scan_dataset
from core.errors import UserError
from core.manifest import FidScores, Score

NOTE = (
    "FID is biased upwards at small sample sizes: read a class's FID between its "
    "real_vs_real floor (real test vs real train at the same sample size) and the untrained "
    "generator's score (same architecture at initialisation, same sample size); KID is "
    "unbiased. Precision (fidelity) and recall (variety) use k-NN balls of "
    "precision_recall_k neighbours, density and coverage of density_coverage_k (real balls "
    "only); 1 is what a set scores against itself, low recall / coverage means missing modes."
)


class Bar(Protocol):
    """What scoring reports progress to (``synthesize``'s Rich bar, or nothing)."""

    def describe(self, info: str) -> None: ...

    def advance(self, n: int) -> None: ...


@dataclass
class References:
    """The real images a set is scored against, and the untrained generator's images."""

    train: ImageTensors
    test: ImageTensors  # per class as many test images as synthetic ones (the floor)
    untrained: dict[str, torch.Tensor]  # empty without ``untrained_reference``

    def n_images(self) -> int:
        return len(self.train) + len(self.test) + sum(len(u) for u in self.untrained.values())


def load_references(
    gan: LoadedGan, counts: dict[str, int], cfg: SynthConfig, device: torch.device
) -> References:
    train = _real_split(gan, "train")
    test = _floor_subset(_real_split(gan, "test"), counts, cfg.seed)
    untrained = _untrained_sets(gan, counts, cfg, device) if cfg.untrained_reference else {}
    return References(train, test, untrained)


def score_set(
    synthetic_images: dict[str, torch.Tensor],
    refs: References,
    extractor: Any,
    bar: Bar,
    image_size: int,
    *,
    pr_k: int = PRECISION_RECALL_K,
    dc_k: int = DENSITY_COVERAGE_K,
) -> FidScores:
    """FID/KID and the k-NN diversity metrics of each class's synthetic images (in class order)
    against ``refs``."""
    score = partial(_fid_and_prdc, pr_k=pr_k, dc_k=dc_k)
    names = list(synthetic_images)
    n_classes = len(names)
    bar.describe("real train")
    real_train = class_features(refs.train.images, refs.train.labels, n_classes, extractor,
                                progress=bar.advance)  # fmt: skip
    bar.describe("real test (floor)")
    real_test = class_features(refs.test.images, refs.test.labels, n_classes, extractor,
                               progress=bar.advance)  # fmt: skip
    bar.describe("synthetic")
    synthetic = {name: features(images, extractor, progress=bar.advance)
                 for name, images in synthetic_images.items()}  # fmt: skip
    bar.describe("untrained generator")
    chance = _untrained_features(refs.untrained, extractor, bar)
    all_real = np.concatenate(real_train)
    untrained: dict[str, Score] | None = None
    untrained_overall = None
    if chance:
        untrained = {name: score(chance[name], real_train[c])
                     for c, name in enumerate(names) if len(chance[name]) >= 2}  # fmt: skip
        untrained_overall = score(np.concatenate(list(chance.values())), all_real)
    return FidScores(
        extractor=extractor.name,
        reference=f"real training images of the class, at {image_size} px",
        per_class={
            name: score(synthetic[name], real_train[c])
            for c, name in enumerate(names)
            if len(synthetic[name]) >= 2
        },
        overall=score(np.concatenate([synthetic[n] for n in names]), all_real),
        real_vs_real={name: score(real_test[c], real_train[c]) for c, name in enumerate(names)},
        real_vs_real_overall=score(np.concatenate(real_test), all_real),
        untrained_generator=untrained,
        untrained_generator_overall=untrained_overall,
        precision_recall_k=pr_k,
        density_coverage_k=dc_k,
        note=NOTE,
    )


def _untrained_features(
    untrained: dict[str, torch.Tensor], extractor: Any, bar: Bar
) -> dict[str, np.ndarray]:
    """Features of the untrained generator's images, per class, through the same pixel-keyed
    feature cache as the real images: the images are deterministic for a seed, architecture and
    count, so every later ``synthesize`` with them (another GAN seed, a re-run, the pipeline's
    next cell) reads the features instead of running InceptionV3 again."""
    names = list(untrained)
    if not names:
        return {}
    images = torch.cat([untrained[name].cpu() for name in names])
    labels = torch.cat(
        [torch.full((len(untrained[name]),), c, dtype=torch.long) for c, name in enumerate(names)]
    )
    found = class_features(images, labels, len(names), extractor, progress=bar.advance)
    return dict(zip(names, found, strict=True))


def _fid_and_prdc(fake: np.ndarray, real: np.ndarray, pr_k: int, dc_k: int) -> Score:
    """FID/KID of ``fake`` against ``real``, with precision/recall/density/coverage where both sets
    are large enough for their k-NN balls."""
    values = fid_kid_dict(fake, real)
    diversity = prdc(real, fake, pr_k, dc_k)
    if diversity is not None:
        values.update(diversity.to_dict())
    return Score.from_json(values)


def _real_split(gan: LoadedGan, split: str) -> ImageTensors:
    """The GAN's dataset split decoded exactly as for GAN training."""
    index = scan_dataset(Path(gan.config.data))
    if index.class_names != gan.class_names:
        raise UserError(
            f"{index.root}: classes {index.class_names} differ from the GAN's {gan.class_names}; "
            "was the dataset changed after training?"
        )
    samples = index.train if split == "train" else index.test
    return load_samples(samples, index.class_names, gan.config.image_size,
                        resize_mode=gan.config.resize_mode, workers=gan.config.workers)  # fmt: skip


def _untrained_sets(
    gan: LoadedGan, counts: dict[str, int], cfg: SynthConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """Per class, as many images as the synthetic set has, from a generator of the same
    architecture at its initialisation (seeded by ``cfg.seed``): the FID an untrained GAN gets,
    the other end of the scale from the real-vs-real floor."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = build_generator(gan.config, len(gan.class_names))
    generator = sampler(generator.to(device).eval().requires_grad_(False), gan.config)
    return {
        name: class_images(
            generator,
            c,
            counts[name],
            class_generator(cfg.seed, c),
            batch_size=cfg.batch_size,
            device=device,
            truncation=cfg.truncation,
        )  # fmt: skip
        for c, name in enumerate(gan.class_names)
        if counts[name] > 0
    }


def _floor_subset(test: ImageTensors, counts: dict[str, int], seed: int) -> ImageTensors:
    """Per class, as many test images as synthetic ones (at least 2, at most all): the floor is then
    measured at the synthetic set's sample sizes (FID's bias depends on them)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c, name in enumerate(test.class_names):
        members = torch.nonzero(test.labels == c).flatten()
        n = max(2, min(len(members), counts[name]))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n]].sort().values)
    return test.subset(torch.cat(chosen))
