"""`cli pipeline` and `cli cas` as whole commands on two processes (issue 12), on the CPU with gloo.

- ``cli pipeline --nproc 2`` on the tiny study of ``tests/test_pipeline.py`` (one architecture):
  every step runs, the training runs are 2-process runs, the run folders, synthetic set and report
  are written once (the files a one-process study writes), and the summary is printed once;
- the same command under torchrun itself: every rank skips the finished steps alike (rank 0
  decides), the report is re-made, nothing hangs;
- ``cli cas --nproc 2`` on the study's synthetic set: trained on two processes, the manifest
  annotated once, the result printed once;
- the commands that run in one process only refuse under torchrun with one line from rank 0.

Every subprocess runs with one thread and a 30 s collective timeout, so a hang fails fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.configs import FEATURES_ENV

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds any one launch may take before the test fails
TINY = ["--epochs", "1", "--width", "0.0625", "--image-size", "32", "--gan-iterations", "4",
        "--gan-width", "8", "--per-class", "6", "--cam-per-class", "1", "--models", "resnet50",
        "--device", "cpu"]  # fmt: skip
RUNS = ("shapes-s0-resnet50", "shapes-s0-resnet50-aug", "shapes-cas-resnet50")


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    # FID on the random-conv stand-in: through the environment, as no command offers it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SHOEGAN_DIST_TIMEOUT": "30",
           "SHOEGAN_CACHE_DIR": str(tmp / "cache"), "PYTHONPATH": str(ROOT),
           FEATURES_ENV: "random-conv"}  # fmt: skip
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=TIMEOUT)  # fmt: skip


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def study(
    tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]
) -> tuple[Path, list[str], subprocess.CompletedProcess[str]]:
    """(root, the pipeline's arguments, the ``--nproc 2`` launch)."""
    root = tmp_path_factory.mktemp("dstudy")
    data = make_dataset(root / "shapes", "shapes", train_per_class=8, test_per_class=4)
    args = ["pipeline", "--data", str(data), "--runs-dir", str(root / "runs"),
            "--synthetic-dir", str(root / "synthetic"), "--reports-dir", str(root / "reports"),
            *TINY]  # fmt: skip
    return root, args, _run(["-m", "cli", *args, "--nproc", "2", "--local-bn"], root)


@pytest.mark.slow
def test_pipeline_on_two_processes_writes_one_study(
    study: tuple[Path, list[str], subprocess.CompletedProcess[str]],
) -> None:
    root, _, launch = study
    log = launch.stdout + launch.stderr
    assert launch.returncode == 0, log
    assert launch.stdout.count("study on ") == 1 and launch.stdout.count("report: ") == 1, log
    assert "Traceback" not in log and "error" not in log.lower(), log
    runs = root / "runs"
    summary = json.loads((runs / "shapes-study.json").read_text())
    assert summary["best_model"] == "resnet50"
    assert [s["status"] for s in summary["steps"]] == ["ran"] * 8
    for name in (*RUNS, "shapes-gan"):  # trained by both processes, written by rank 0
        config = json.loads((runs / name / "config.json").read_text())
        assert config["distributed"]["world_size"] == 2, name
        assert config["distributed"]["sync_bn"] is False, name  # --local-bn reached every run
        assert (runs / name / "best.pt").is_file() and not (runs / name / ".lock").exists()
    for name in RUNS:
        assert (runs / name / "eval" / "metrics.json").is_file()
    manifest = json.loads((root / "synthetic" / "shapes-gan" / "manifest.json").read_text())
    assert set(manifest["counts"].values()) == {6} and manifest["cas"]["run"] == RUNS[2]
    report = Path(summary["report"]).parent
    for name in ("report.html", "report.md", "report.json", "arms.json", "arms.md"):
        assert (report / name).is_file(), name
    # One set of folders: the study's files, nothing doubled, no temporary folder left behind.
    assert sorted(p.name for p in (root / "synthetic").iterdir()) == ["shapes-gan"]
    assert sorted(p.name for p in (root / "reports").iterdir()) == [report.name]
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [
            *RUNS,
            "shapes-dataset.json",
            "shapes-gan",
            "shapes-pipeline.json",
            "shapes-s0-models.json",
            "shapes-study.json",
        ]  # fmt: skip
    )


@pytest.mark.slow
def test_pipeline_under_torchrun_skips_finished_steps_alike(
    study: tuple[Path, list[str], subprocess.CompletedProcess[str]],
) -> None:
    root, args, first = study
    assert first.returncode == 0, first.stdout + first.stderr
    before = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("*.pt")}
    files = _files(root / "runs")
    again = _run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                  "-m", "cli", *args], root)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("study on ") == 1, again.stdout
    steps = json.loads((root / "runs" / "shapes-pipeline.json").read_text())["steps"]
    assert {s["step"]: s["status"] for s in steps} == {
        "dataset": "ran", "classifiers seed 0": "skipped (complete)",
        "gan-train": "skipped (complete)",
        "synthesize": "skipped (complete)", "augmented seed 0": "skipped (complete)",
        "cas": "skipped (complete)", "compare": "ran", "arms": "ran",
    }  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("*.pt")} == before
    assert _files(root / "runs") == files


@pytest.mark.slow
def test_cas_on_two_processes(
    study: tuple[Path, list[str], subprocess.CompletedProcess[str]],
) -> None:
    root, _, first = study
    assert first.returncode == 0, first.stdout + first.stderr
    synthetic = root / "synthetic" / "shapes-gan"
    launch = _run(["-m", "cli", "cas", "--synthetic", str(synthetic), "--model", "resnet50",
                   "--epochs", "1", "--width", "0.0625", "--image-size", "32", "--device", "cpu",
                   "--runs-dir", str(root / "runs"), "--baseline", RUNS[0], "--name", "cas2",
                   "--nproc", "2"], root)  # fmt: skip
    assert launch.returncode == 0, launch.stdout + launch.stderr
    assert launch.stdout.count("CAS of ") == 1, launch.stdout
    config = json.loads((root / "runs" / "cas2" / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2
    cas = json.loads((synthetic / "manifest.json").read_text())["cas"]
    metrics = json.loads((root / "runs" / "cas2" / "eval" / "metrics.json").read_text())
    assert cas["run"] == "cas2" and cas["test_acc"] == metrics["accuracy"]
    assert cas["real_baseline"]["run"] == RUNS[0]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_one_process_commands_refuse_under_torchrun(
    rank: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    commands = [
        ["synthesize", "--gan", "g", "--runs-dir", str(tmp_path)],
        ["fid", str(tmp_path), str(tmp_path)],
        ["compare", "a", "b", "--runs-dir", str(tmp_path)],
        ["explain", "a", "--runs-dir", str(tmp_path)],
        ["gradcam", "a", "--runs-dir", str(tmp_path)],
        ["data", "footwear", "--out", str(tmp_path / "fw")],
    ]
    for args in commands:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        line = f"error: cli {' '.join(args[:2] if args[0] == 'data' else args[:1])} runs in one"
        if rank == "0":  # rank 0 says it once, for all
            assert result.output.startswith(line) and result.output.count("\n") == 1, args
        else:
            assert result.output == "", (args, result.output)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_train_all_on_two_processes(tmp_path: Path, make_dataset: Callable[..., Path]) -> None:
    data = make_dataset(tmp_path / "shapes", "shapes", train_per_class=8, test_per_class=4)
    launch = _run(["-m", "cli", "train-all", "--data", str(data), "--runs-dir",
                   str(tmp_path / "runs"), "--models", "resnet50,resnet50-se", "--epochs", "1",
                   "--width", "0.0625", "--image-size", "32", "--batch-size", "8",
                   "--cam-per-class", "0", "--device", "cpu", "--nproc", "2"], tmp_path)  # fmt: skip
    assert launch.returncode == 0, launch.stdout + launch.stderr
    assert launch.stdout.count("best by validation accuracy") == 1, launch.stdout
    for name in ("resnet50", "resnet50-se"):
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        # local BatchNorm: the default on the CPU (SyncBatchNorm needs CUDA)
        assert config["distributed"] == {**config["distributed"], "world_size": 2, "sync_bn": False}
    assert json.loads((tmp_path / "runs" / "models.json").read_text())["best"] in (
        "resnet50",
        "resnet50-se",
    )
