"""Checks that need several processes, run by ``tests/test_distributed.py`` under
``python -m torch.distributed.run --nproc-per-node 2 tests/distributed_worker.py OUT DATA CONFIG``.

Each rank writes ``OUT/rank<R>.json`` (the values the test asserts on); rank 0 also writes the
sharded feature arrays (``OUT/features_*.npy``), and, through the library as ``cli train`` and
``cli evaluate`` call it, the classifier run ``OUT/runs/still`` (CONFIG: a TrainConfig as JSON)
and its ``eval/``. Nothing runs on import."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def gradient_match(batch_statistics: bool) -> dict[str, float]:
    """One training step of a tiny ResNet-50-CBAM in float64: DDP on each rank's part of a
    15-image batch (unequal shares, weighted as the trainer weights them) against the same step on
    the whole batch in this one process. BatchNorm normalises by each rank's share with
    ``batch_statistics`` (train mode, local BatchNorm: SyncBatchNorm needs CUDA), by its running
    statistics otherwise (eval mode: every image's loss is then independent of the others)."""
    from classify.models import ModelConfig, build_model
    from core.data import to_model_input
    from core.ddp import data_parallel, unwrap
    from core.distributed import world_size
    from core.ranks import batch_part

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    config = ModelConfig(name="resnet50-cbam", num_classes=3, image_size=16, width=0.0625)
    reference, model = build_model(config), build_model(config)
    model.load_state_dict(reference.state_dict())
    images = torch.randint(0, 256, (15, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    x, y = to_model_input(images.to(torch.uint8)).double(), torch.arange(15) % 3
    loss_fn = torch.nn.CrossEntropyLoss()
    reference.train(batch_statistics)
    model.train(batch_statistics)
    loss_fn(reference(x), y).backward()
    net = data_parallel(model, torch.device("cpu"), sync_bn=False)
    part = batch_part(15)
    (loss_fn(net(x[part]), y[part]) * (len(y[part]) * world_size() / 15)).backward()
    grads = [
        ((a.grad - b.grad).abs().max() / (a.grad.abs().max() + 1e-30)).item()
        for a, b in zip(reference.parameters(), unwrap(net).parameters(), strict=True)
    ]
    buffers = [
        (a - b).abs().max().item()
        for a, b in zip(reference.buffers(), unwrap(net).buffers(), strict=True)
        if a.dtype.is_floating_point
    ]
    torch.set_default_dtype(torch.float32)
    return {"grad_rel": max(grads), "buffer_abs": max(buffers), "part_size": len(y[part])}


def primitives() -> dict[str, object]:
    from core.distributed import (
        SharedError,
        check_batch_split,
        is_active,
        on_main,
        same_on_every_rank,
    )
    from core.errors import UserError
    from core.ranks import all_sum, batch_part, gather_objects, main_only, map_sharded

    out: dict[str, object] = {}
    out["map_sharded"] = map_sharded(list(range(7)), lambda i: i * i)
    out["parts"] = gather_objects([batch_part(7).start, batch_part(7).stop])
    out["all_sum"] = all_sum([1.0, 2.5])
    try:
        on_main(lambda: (_ for _ in ()).throw(UserError("refused on rank 0")))
    except SharedError as exc:
        out["on_main_error"] = f"shared: {exc}"
    except UserError as exc:
        out["on_main_error"] = f"own: {exc}"
    out["on_main_value"] = on_main(lambda: "from rank 0")
    # Rank 0 alone, as one process: no collective inside (nested helpers are the identity).
    out["main_only"] = main_only(
        lambda: [is_active(), on_main(lambda: 7), map_sharded([1, 2], str)]
    )
    try:
        main_only(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    except KeyboardInterrupt:
        out["main_only_interrupt"] = True
    try:
        same_on_every_rank(torch.distributed.get_rank(), "rank numbers")
    except UserError as exc:
        out["differ"] = str(exc)
    try:
        check_batch_split(7, sync_bn=False)
    except UserError as exc:
        out["batch_split"] = str(exc)
    return out


def features(out: Path, data: Path) -> None:
    from augment.fid.features import features_of
    from augment.fid.standin import RandomConvExtractor

    extractor = RandomConvExtractor(device=torch.device("cpu"))
    images = torch.randint(0, 256, (11, 3, 16, 16), generator=torch.Generator().manual_seed(2))
    tensor = features_of(images.to(torch.uint8), extractor, batch_size=3)
    files = features_of(sorted(data.rglob("*.png")), extractor, batch_size=4, cache=False)
    if torch.distributed.get_rank() == 0:
        np.save(out / "features_tensor.npy", tensor)
        np.save(out / "features_files.npy", files)


def train_and_evaluate(config: dict) -> None:
    from classify.evaluation.evaluate import evaluate_run
    from classify.training.config import TrainConfig
    from classify.training.trainer import train

    cfg = TrainConfig.from_dict(config)
    train(cfg, progress=False)
    evaluate_run(Path(cfg.runs_dir) / cfg.name, "last", batch_size=5, device="cpu",
                 show_progress=False)  # fmt: skip


def main() -> None:
    out, data, config = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    torch.set_num_threads(1)
    from core.distributed import rank, start
    from core.ranks import finish

    start(torch.device("cpu"), timeout=60)
    result = {"gradient": gradient_match(False), "local_bn": gradient_match(True), **primitives()}
    features(out, data / "test")
    train_and_evaluate(config)
    me = rank()
    finish()  # both ranks meet, then leave the group (what every command does on success)
    result["left_group"] = not torch.distributed.is_initialized()
    (out / f"rank{me}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
