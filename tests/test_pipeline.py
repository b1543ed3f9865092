"""`cli pipeline` end to end on a tiny dataset, its numbers against the runs' files, its resume,
and the augmented-training pieces it relies on (class mismatch, equal step budget)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

CLASSES = ("circle", "square", "triangle")
TINY = ["--epochs", "1", "--width", "0.0625", "--image-size", "32", "--gan-iterations", "4",
        "--gan-width", "8", "--per-class", "6", "--cam-per-class", "1",
        "--models", "resnet50,resnet50-se", "--device", "cpu"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("standin_features")


@pytest.fixture(scope="module")
def study(
    tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]
) -> tuple[Path, list[str], dict]:
    from cli import app

    root = tmp_path_factory.mktemp("pipeline")
    data = make_dataset(root / "shapes", "shapes", train_per_class=8, test_per_class=4)
    args = ["pipeline", "--data", str(data), "--runs-dir", str(root / "runs"),
            "--synthetic-dir", str(root / "synthetic"), "--reports-dir", str(root / "reports"),
            *TINY]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, args, json.loads((root / "runs" / "shapes-study.json").read_text())


@pytest.mark.slow
def test_every_step_leaves_its_outputs(study: tuple[Path, list[str], dict]) -> None:
    root, _, summary = study
    runs = root / "runs"
    best = summary["best_model"]
    for name in ("shapes-s0-resnet50", "shapes-s0-resnet50-se", f"shapes-s0-{best}-aug",
                 f"shapes-cas-{best}"):  # fmt: skip
        assert (runs / name / "best.pt").is_file()
        assert (runs / name / "eval" / "metrics.json").is_file()
    assert (runs / "shapes-gan" / "best.pt").is_file()
    manifest = json.loads((root / "synthetic" / "shapes-gan" / "manifest.json").read_text())
    assert manifest["counts"] == {"circle": 6, "square": 6, "triangle": 6} or all(
        n == 6 for n in manifest["counts"].values()
    )
    assert "cas" in manifest and 0.0 <= manifest["cas"]["test_acc"] <= 1.0
    # The summary carries the generator's diversity metrics as the manifest has them.
    metrics = ("precision", "recall", "density", "coverage")
    for name, score in {
        **manifest["fid"]["per_class"],
        "overall": manifest["fid"]["overall"],
    }.items():
        assert summary["diversity"][name] == {k: score[k] for k in metrics}
    from rich.console import Console
    from rich.table import Table

    from commands.study import summary_table

    screen = Console(width=200, record=True)
    screen.print(summary_table(summary, Table))
    printed = screen.export_text()
    overall = summary["diversity"]["overall"]
    assert "precision / recall / density / coverage overall" in printed
    assert " / ".join(f"{overall[k]:.2f}" for k in metrics) in printed
    report = Path(summary["report"])
    assert report.is_file() and (report.parent / "report.md").is_file()
    assert [s["status"] for s in summary["steps"]].count("ran") == len(summary["steps"])
    # One seed: the report's verdict advises the study's own way to more seeds.
    verdict = json.loads((report.parent / "report.json").read_text())["verdict"]
    assert "rerun the same cli pipeline command with --seeds 3" in verdict
    assert "by `cli pipeline`" in report.parent.joinpath("report.md").read_text()
    assert (
        "cli compare a_s0" not in verdict
        and verdict in report.parent.joinpath("report.md").read_text()
    )


def _runs_table(markdown: str) -> dict[str, dict[str, str]]:
    """report.md's "Runs" table as {run name: {column: cell}}."""
    lines = markdown.splitlines()
    start = lines.index("## Runs")
    header = next(line for line in lines[start:] if line.startswith("| side | run |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    table: dict[str, dict[str, str]] = {}
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        cells = dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True))
        table[cells["run"].strip("`")] = cells
    return table


@pytest.mark.slow
def test_report_numbers_equal_the_runs_metrics(study: tuple[Path, list[str], dict]) -> None:
    root, _, summary = study
    folder = Path(summary["report"]).parent
    report = json.loads((folder / "report.json").read_text())
    printed = _runs_table((folder / "report.md").read_text())
    # Side A holds the baselines, side B the augmented runs, each with its own eval numbers:
    # exact in report.json, to the printed precision (half a unit in the last digit) in report.md.
    for side, runs in (("A", summary["baseline_runs"]), ("B", summary["augmented_runs"])):
        rows = report["runs"][side]
        assert [row["name"] for row in rows] == runs
        for row in rows:
            path = root / "runs" / row["name"] / "eval" / "metrics.json"
            metrics = json.loads(path.read_text())
            assert row["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)
            assert row["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-12)
            shown = printed[row["name"]]
            assert shown["side"] == side
            assert shown["test acc"].endswith("%")
            accuracy = float(shown["test acc"].removesuffix("%")) / 100
            assert accuracy == pytest.approx(metrics["accuracy"], abs=0.5e-4 + 1e-12)
            assert float(shown["macro-F1"]) == pytest.approx(
                metrics["macro_f1"], abs=0.5e-4 + 1e-12
            )
    # The augmented run trained on real + synthetic by the default recipe: the baseline's real
    # batches (real exposure and steps held fixed) plus a synthetic batch of the batch size
    # (here capped at the 18 synthetic images).
    base = json.loads((root / "runs" / summary["baseline_runs"][0] / "config.json").read_text())
    aug = json.loads((root / "runs" / summary["augmented_runs"][0] / "config.json").read_text())
    assert aug["train"]["epoch_size"] is None and aug["synthetic"]["path"].endswith("shapes-gan")
    assert aug["train"]["synthetic_batch"] == min(base["train"]["batch_size"], 18)
    assert aug["synthetic"]["recipe"]["mode"] == "fixed-real-exposure"
    for key in ("real_presentations", "optimizer_steps"):
        assert aug[key] == base[key], key
    assert (
        aug["synthetic_presentations"] == aug["optimizer_steps"] * aug["train"]["synthetic_batch"]
    )
    changed = ("name", "synthetic", "synthetic_batch")
    assert {k: v for k, v in aug["train"].items() if k not in changed} == {
        k: v for k, v in base["train"].items() if k not in changed
    }
    hist_a = (root / "runs" / summary["baseline_runs"][0] / "history.jsonl").read_text()
    hist_b = (root / "runs" / summary["augmented_runs"][0] / "history.jsonl").read_text()
    assert len(hist_a.splitlines()) == len(hist_b.splitlines())


@pytest.mark.slow
def test_rerun_skips_finished_steps(study: tuple[Path, list[str], dict]) -> None:
    from cli import app

    root, args, _ = study
    stamp = (root / "runs" / "shapes-gan" / "last.pt").stat().st_mtime_ns
    # Simulate an interruption in the augmented step: its run folder is removed.
    summary = json.loads((root / "runs" / "shapes-study.json").read_text())
    import shutil

    shutil.rmtree(root / "runs" / summary["augmented_runs"][0])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    again = json.loads((root / "runs" / "shapes-study.json").read_text())
    status = {s["step"]: s["status"] for s in again["steps"]}
    assert status["dataset"] == "ran"  # the fingerprint, checked (study.pipeline.fingerprint)
    assert status["classifiers seed 0"].startswith("skipped")
    assert status["gan-train"].startswith("skipped")
    assert status["synthesize"].startswith("skipped")
    assert status["augmented seed 0"] == "ran"
    assert (root / "runs" / "shapes-gan" / "last.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_synthetic_ratio_adds_its_own_augmented_run(
    study: tuple[Path, list[str], dict],
) -> None:
    from cli import app

    root, args, _ = study
    result = CliRunner().invoke(app, [*args, "--synthetic-ratio", "0.5", "--no-cas"])
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "runs" / "shapes-study-r0.5.json").read_text())
    status = {s["step"]: s["status"] for s in summary["steps"]}
    assert status["gan-train"].startswith("skipped") and status["augmented seed 0"] == "ran"
    (aug,) = summary["augmented_runs"]
    assert aug.endswith("-aug-r0.5")
    config = json.loads((root / "runs" / aug / "config.json").read_text())
    assert config["train"]["synthetic_ratio"] == 0.5
    counts = config["synthetic"]["counts"]
    real = config["dataset"]["train_class_counts"]
    assert counts == {name: round(0.5 * n) for name, n in real.items()}
    assert Path(summary["report"]).parent.name.endswith("-baseline-vs-augmented-r0.5")


@pytest.mark.slow
def test_the_mixed_gan_recipe_trains_the_older_config_beside_the_default(
    study: tuple[Path, list[str], dict],
) -> None:
    from cli import app

    root, args, _ = study
    result = CliRunner().invoke(app, [*args, "--gan-recipe", "mixed", "--no-cas"])
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "runs" / "shapes-study-mixed.json").read_text())
    status = {s["step"]: s["status"] for s in summary["steps"]}
    assert status["gan-train"].startswith("skipped") and status["augmented seed 0"] == "ran"
    (aug,) = summary["augmented_runs"]
    assert aug.endswith("-aug-mixed") and summary["gan_recipe"] == "mixed"
    base = json.loads((root / "runs" / summary["baseline_runs"][0] / "config.json").read_text())
    config = json.loads((root / "runs" / aug / "config.json").read_text())
    assert config["train"]["epoch_size"] == base["dataset"]["n_train"]
    assert config["train"]["synthetic_batch"] == 0
    assert config["synthetic"]["recipe"]["mode"] == "mixed-batches"
    assert config["optimizer_steps"] == base["optimizer_steps"]
    assert config["real_presentations"] < base["real_presentations"]  # diluted by the synthetic
    assert Path(summary["report"]).parent.name.endswith("-baseline-vs-augmented-mixed")
    assert (root / "runs" / f"{summary['baseline_runs'][0]}-aug" / "best.pt").is_file()  # kept


def test_synthetic_class_mismatch_is_a_clear_error(
    tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    from cli import app

    data = make_dataset(tmp_path / "data", "shapes", train_per_class=4, test_per_class=2)
    synthetic = make_dataset(
        tmp_path / "syn", "shapes", 1, 0, classes=("circle", "square", "hexagon")
    )
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--name",
            "x",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--synthetic",
            str(synthetic / "train"),
            "--epochs",
            "1",
            "--width",
            "0.0625",
            "--image-size",
            "32",
            "--device",
            "cpu",
        ],  # fmt: skip
    )
    assert result.exit_code == 2
    assert "synthetic classes" in result.output and "hexagon" in result.output


@pytest.mark.slow
def test_learning_curve_runs_one_study_per_size(
    tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    from cli import app

    data = make_dataset(tmp_path / "shapes", "shapes", train_per_class=8, test_per_class=4)
    before = sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*"))
    args = ["pipeline", "--data", str(data), "--runs-dir", str(tmp_path / "runs"),
            "--synthetic-dir", str(tmp_path / "synthetic"), "--reports-dir",
            str(tmp_path / "reports"), "--data-dir", str(tmp_path / "subsets"), *TINY,
            "--train-per-class", "8,4", "--no-cas",
            "--arms", "real,real+gan,real+trivialaugment"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    curve = json.loads((tmp_path / "runs" / "shapes-learning-curve.json").read_text())
    assert curve["sizes"] == [4, 8] and set(curve["points"]) == {"4", "8"}
    subsets = {n: tmp_path / "subsets" / f"shapes-{n}" for n in (4, 8)}
    for n, folder in subsets.items():
        names = {c: sorted(p.name for p in (folder / "train" / c).iterdir()) for c in CLASSES}
        assert all(len(files) == n for files in names.values())
        assert {c: len(list((folder / "test" / c).iterdir())) for c in CLASSES} == dict.fromkeys(
            CLASSES, 4
        )
        study = json.loads((tmp_path / "runs" / f"shapes-{n}-study.json").read_text())
        assert study["data"] == str(folder)
        point = curve["points"][str(n)]
        assert list(point) == ["real", "real+gan", "real+trivialaugment"]  # every arm
        for arm, side in (("real", "A"), ("real+gan", "B")):
            values = study["comparison"]["seeds"][side]["accuracy"]["values"]
            assert point[arm]["values"] == values
        for arm, row in study["arms"]["arms"].items():
            assert point[arm]["values"] == row["accuracy"]
            assert point[arm]["low"] <= point[arm]["mean"] == pytest.approx(row["accuracy"][0])
            assert point[arm]["mean"] <= point[arm]["high"]
            if arm != "real":  # one seed: the test-only interval, said so
                pooled = row["test_only"]
                assert point[arm]["delta"]["source"] == "test images only"
                assert point[arm]["delta"]["low"] == pooled["low"]
                assert point[arm]["delta"]["p_holm"] == pooled["p_holm"]
        # The GAN of a size saw that size's real images only.
        gan = json.loads((tmp_path / "runs" / f"shapes-{n}-gan" / "config.json").read_text())
        assert json.dumps(gan).count(str(folder)) >= 1
    small = {p.name for p in (subsets[4] / "train").rglob("*.png")}
    assert small <= {p.name for p in (subsets[8] / "train").rglob("*.png")}  # nested subsets
    assert Path(curve["figure"]).is_file() and "learning curve" in result.output
    assert sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*")) == before
    # Finished cells are skipped on a re-run.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    for n in (4, 8):
        steps = json.loads((tmp_path / "runs" / f"shapes-{n}-pipeline.json").read_text())["steps"]
        redone = [s["step"] for s in steps if s["status"] != "skipped (complete)"]
        assert redone == ["dataset", "compare", "arms"]  # the checks and tables; no training
    assert "learning curve on" in result.output and "Δ vs real" in result.output
    bad = CliRunner().invoke(app, [*args[:-5], "--train-per-class", "8,x"])
    assert bad.exit_code != 0 and "--train-per-class '8,x'" in bad.output


@pytest.mark.slow
def test_arms_train_each_recipe_on_the_baseline_budget_and_face_real(
    tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    from cli import app

    data = make_dataset(tmp_path / "shapes", "shapes", train_per_class=8, test_per_class=4)
    modified = "real+gan:teacher:separate-bn:finetune:w0.5+mixup"  # every modifier at once
    arms = f"real,real+gan,real+trivialaugment,{modified}"
    args = ["pipeline", "--data", str(data), "--runs-dir", str(tmp_path / "runs"),
            "--synthetic-dir", str(tmp_path / "synthetic"), "--reports-dir",
            str(tmp_path / "reports"), *TINY, "--no-cas", "--seeds", "2", "--arms", arms]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    study = json.loads((tmp_path / "runs" / "shapes-study.json").read_text())
    best, runs = study["best_model"], tmp_path / "runs"
    suffixes = {"real": "", "real+gan": "-aug", "real+trivialaugment": "-trivialaugment",
                modified: "-aug-teacher-sepbn-ft-w0.5-mixup"}  # fmt: skip
    saved = {}
    for seed in (0, 1):
        base = f"shapes-s{seed}-{best}"
        saved[seed] = {
            arm: json.loads((runs / f"{base}{suffix}" / "config.json").read_text())
            for arm, suffix in suffixes.items()
        }
        configs = {arm: config["train"] for arm, config in saved[seed].items()}
        assert configs["real+trivialaugment"]["augment"] == "pad-crop,trivialaugment"
        assert configs["real+trivialaugment"]["synthetic"] is None
        assert configs[modified]["augment"] == "pad-crop,mixup"
        assert configs[modified]["synthetic"] == configs["real+gan"]["synthetic"]
        recipe = {"synthetic_labels": "teacher", "teacher": base, "synthetic_bn": "separate",
                  "finetune_real_epochs": 1, "synthetic_weight": 0.5}  # fmt: skip
        assert {k: configs[modified][k] for k in recipe} == recipe
        # Only what the arm's name says differs from the run it builds on (same budget).
        ignore = {"name", "augment", *recipe}
        for arm, base_arm in (("real+trivialaugment", "real"), (modified, "real+gan")):
            a, b = configs[arm], configs[base_arm]
            assert {k: v for k, v in a.items() if k not in ignore} == {
                k: v for k, v in b.items() if k not in ignore
            }
    table = study["arms"]
    report_dir = Path(study["report"]).parent
    assert json.loads((report_dir / "arms.json").read_text()) == table
    assert list(table["arms"]) == arms.split(",")
    comparison = study["comparison"]
    assert table["arms"]["real"]["accuracy"] == comparison["seeds"]["A"]["accuracy"]["values"]
    gan_row = table["arms"]["real+gan"]
    assert gan_row["accuracy"] == comparison["seeds"]["B"]["accuracy"]["values"]
    per_seed = [s["delta"]["delta"] for s in gan_row["per_seed"]]
    assert [s["seed"] for s in gan_row["per_seed"]] == gan_row["seeds"] == [0, 1]
    assert gan_row["test_only"]["delta"] == pytest.approx(sum(per_seed) / 2)
    # The headline counts seeds and test images: at least as wide as the seeds' own t-interval
    # (t = 12.706 at two seeds, sd |d0 - d1| / sqrt(2), over sqrt(2) seeds).
    interval = gan_row["interval"]
    half = 12.706 * abs(per_seed[0] - per_seed[1]) / 2**0.5 / 2**0.5
    assert interval["delta"] == pytest.approx(sum(per_seed) / 2)
    assert interval["high"] - interval["delta"] >= half - 1e-9
    for arm in arms.split(",")[1:]:
        row = table["arms"][arm]
        assert row["verdict"] is None  # two seeds: no verdict about the method
        for entry in (row["interval"], row["test_only"]):
            assert entry["low"] <= entry["delta"] <= entry["high"]
            assert entry["p_value"] <= entry["p_holm"] <= 1
    assert "--seeds 3" in table["verdict"]
    assert table["verdict"] in (report_dir / "arms.md").read_text()
    # ...and the same table in the study's report (Markdown, HTML, JSON).
    md, page = (report_dir / "report.md").read_text(), (report_dir / "report.html").read_text()
    assert "Arms: every recipe against real only" in md and table["verdict"] in md
    assert (
        modified in page and json.loads((report_dir / "report.json").read_text())["arms"] == table
    )
    # Each arm's recipe and the images its runs were shown, as their config.json say.
    keys = ("real_presentations", "synthetic_presentations", "optimizer_steps")
    arms_md = (report_dir / "arms.md").read_text()
    for arm, row in table["arms"].items():
        shown = row["presentations"]
        assert shown == {k: [saved[s][arm][k] for s in (0, 1)] for k in keys}, arm
        assert f"| {arm} | {row['recipe']['text']} | {shown['real_presentations'][0]:,} |" in md
        assert row["recipe"]["text"] in arms_md
    real, gan = table["arms"]["real"]["presentations"], table["arms"]["real+gan"]["presentations"]
    assert gan["real_presentations"] == real["real_presentations"]  # real exposure held fixed
    assert table["arms"]["real+gan"]["recipe"]["text"].startswith("separate: each real batch")
    teachers = f"soft labels of teacher shapes-s0-{best}, shapes-s1-{best} (T 2)"
    assert teachers in table["arms"][modified]["recipe"]["text"]
    assert f"{modified} (K = 1)" in table["budget"]
    rule = "every arm trains the baseline's epochs with real exposure held fixed"
    assert rule in md and rule in arms_md and "best epoch by validation accuracy" in md
    # Every arm's validation curve, the mean over seeds, in one figure.
    assert table["arms"][modified]["val_curve"]["epoch"] == [1, 2]  # + 1 finetune epoch
    assert (report_dir / table["figure"]).is_file() and f"({table['figure']})" in md
    assert "Training loss and validation accuracy per epoch of every arm" in page
    assert table["arms"][modified]["loss_curve"]["epoch"] == [1, 2]
    # Every arm's confusion matrix, summed over seeds: its diagonal is the arm's mean accuracy.
    from study.pipeline.arms import mean_val

    for arm, row in table["arms"].items():
        counts = row["confusion"]
        total = sum(map(sum, counts))
        assert total == 2 * table["n_test"] and len(counts) == len(table["class_names"])
        diagonal = sum(counts[i][i] for i in range(len(counts)))
        assert diagonal / total == pytest.approx(row["mean"]), arm
    assert (report_dir / table["confusion_figure"]).is_file()
    assert f"({table['confusion_figure']})" in arms_md and "Confusion matrix of every arm" in page
    # Grad-CAM of the best other arm by validation accuracy against real, on the same images.
    cam, others = table["cam"], arms.split(",")[1:]
    assert cam["arm"] == max(others, key=lambda arm: mean_val(table["arms"][arm]))
    assert list(cam["faithfulness"]) == ["real", cam["arm"]] and len(cam["files"]) == 3
    assert (report_dir / cam["figure"]).is_file() and f"({cam['figure']})" in arms_md
    assert f"Class-activation maps (gradcam) of real and {cam['arm']}" in page
    assert "arms verdict" in result.output
    # A re-run skips every finished arm; an unknown arm is a one-line error.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    steps = json.loads((runs / "shapes-pipeline.json").read_text())["steps"]
    assert all(s["status"] == "skipped (complete)" for s in steps if s["step"].startswith("arm "))
    bad = CliRunner().invoke(app, [*args[:-1], "real,real+gan+flip"])
    assert bad.exit_code != 0 and "'real+gan+flip' is not an arm" in bad.output
    twice = CliRunner().invoke(app, [*args[:-1], "real,real+trivialaugment+randaugment"])
    assert twice.exit_code != 0 and "two of a kind" in twice.output


def test_a_synthetic_set_from_an_older_gan_checkpoint_is_not_complete(tmp_path: Path) -> None:
    from core.io import sha256_file
    from core.manifest import MANIFEST, Manifest
    from study.pipeline.plan import synthetic_complete

    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"the GAN at 3,000 iterations")
    folder = tmp_path / "set"
    folder.mkdir()
    manifest = Manifest(counts={"a": 5, "b": 5}, checkpoint_sha256=sha256_file(checkpoint))
    manifest.write(folder / MANIFEST)
    assert synthetic_complete(folder, 5, checkpoint) and synthetic_complete(folder, 5)
    assert not synthetic_complete(folder, 6, checkpoint)  # too few images
    checkpoint.write_bytes(b"the same run trained on to 9,000 iterations")
    assert not synthetic_complete(folder, 5, checkpoint)  # stale: drawn from the older file
    assert synthetic_complete(folder, 5)  # without a checkpoint, only the counts matter
