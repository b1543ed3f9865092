"""One command line: a concept has one option name, help and default in every command that takes
it; renamed options keep their old spelling as a hidden alias with a one-line note; the presets
agree; the dataclasses' defaults are the options'; ``--version``; the order of ``cli --help``.

No ``from __future__ import annotations``: Typer must see real annotations (none are declared
here, but the module imports the app)."""

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

# Old spellings, renamed for one name per concept: never declared, only accepted as aliases.
FORBIDDEN = {"--method", "--out-dir"}
PER_CLASS = {"synthesize", "pipeline"}  # where --per-class is the number of synthetic images


def _commands() -> dict[str, Any]:
    """Every leaf command of the app by its full name (``data footwear``)."""
    import typer

    from cli import app

    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            full = f"{prefix} {name}".strip()
            if hasattr(command, "commands"):
                walk(command, full)
            else:
                found[full] = command

    walk(typer.main.get_command(app), "")
    return found


def _options(command: Any) -> dict[str, Any]:
    """Option name (``--x``, and ``--no-x`` of a pair) -> the option."""
    out = {}
    for param in command.params:
        if param.param_type_name == "option":
            for opt in (*param.opts, *param.secondary_opts):
                out[opt] = param
    return out


def _taking(option: str) -> dict[str, Any]:
    """Command name -> its option ``option``, for every command that takes it."""
    return {name: _options(c)[option] for name, c in _commands().items() if option in _options(c)}


def _help(args: list[str]) -> str:
    from cli import app

    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.output


# --- one name per concept -----------------------------------------------------------------------


def test_old_spellings_are_only_hidden_aliases() -> None:
    for name, command in _commands().items():
        declared = set(_options(command))
        assert not declared & FORBIDDEN, f"{name} declares {declared & FORBIDDEN}"
        if name not in PER_CLASS:
            assert "--per-class" not in declared, name
        for old, new in getattr(command, "renamed", {}).items():
            assert old not in declared and new in declared, (name, old, new)
            shown = _help([*name.split(), "--help"])
            assert re.search(rf"{re.escape(new)}\b", shown), (name, new)
            assert not re.search(rf"{re.escape(old)}(?![\w-])", shown), (name, old)


def test_a_cam_method_and_a_cam_count_have_one_name_everywhere() -> None:
    for name, command in _commands().items():
        for param in command.params:
            if not param.name or param.name in ("score_per_class", "train_per_class"):
                continue
            if "method" in param.name:
                assert param.opts == ["--cam-method"], (name, param.opts)
            elif param.name == "per_class":
                assert param.opts == ["--per-class"] and name in PER_CLASS, name
            elif param.name.endswith("per_class"):
                assert param.opts == ["--cam-per-class"], (name, param.opts)
    assert set(_taking("--cam-method")) == {"gradcam", "explain", "compare", "train-all"}
    assert set(_taking("--cam-per-class")) == {
        "gradcam", "explain", "attention", "compare", "train-all", "pipeline",
    }  # fmt: skip
    assert set(_taking("--out")) >= {"gradcam", "explain", "attention", "compare", "synthesize"}


@pytest.mark.parametrize(
    ("option", "same_help"),
    [
        ("--device", True),
        ("--runs-dir", True),
        ("--cam-method", True),
        ("--rollout", True),
        ("--cam-per-class", False),
        ("--score-per-class", False),
        ("--preset", False),
        ("--overwrite", False),
        ("--split-seed", True),
    ],
)
def test_one_concept_has_one_default_and_help(option: str, same_help: bool) -> None:
    taking = _taking(option)
    assert len(taking) >= 2, option
    defaults = {name: param.default for name, param in taking.items()}
    assert len(set(map(str, defaults.values()))) == 1, defaults
    if same_help:
        assert len({param.help for param in taking.values()}) == 1, option


def test_checkpoint_takes_best_last_or_a_file_everywhere() -> None:
    taking = _taking("--checkpoint")
    assert set(taking) == {
        "evaluate", "gradcam", "predict", "attention", "explain", "compare", "synthesize",
    }  # fmt: skip
    assert {param.metavar for param in taking.values()} == {"<best|last|path>"}
    assert {param.default for param in taking.values()} == {"best"}
    classifier = {param.help for name, param in taking.items() if name != "synthesize"}
    assert len(classifier) == 1


def test_a_checkpoint_file_is_found_in_each_run_folder_or_refused_for_several(
    tmp_path: Path,
) -> None:
    from core.errors import UserError
    from core.rundir import checkpoint_path
    from study.compare.job import evaluate_if_needed

    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
        (run / "epoch3.pt").write_bytes(b"")
    shared = tmp_path / "shared.pt"
    shared.write_bytes(b"")
    assert [checkpoint_path(r, "epoch3.pt") for r in runs] == [r / "epoch3.pt" for r in runs]
    assert checkpoint_path(runs[0], str(shared)) == shared
    with pytest.raises(UserError, match="one file for 2 runs"):
        evaluate_if_needed(runs, str(shared), "cpu")
    with pytest.raises(UserError, match="choose best or last"):
        checkpoint_path(runs[0], "middle")


def test_data_defaults_to_the_footwear_set_where_it_is_the_training_data() -> None:
    for name in ("train", "train-all", "gan-train"):
        assert str(_taking("--data")[name].default) == "data/footwear", name


def test_metavars_have_one_style() -> None:
    """Options: Typer's ``<type>`` (or a flag's nothing); arguments: an upper-case name."""
    for name, command in _commands().items():
        for param in command.params:
            if param.param_type_name == "option":
                ok = param.metavar in (None, "") or re.fullmatch(r"<[^<>]+>", param.metavar)
            else:
                ok = param.metavar is not None and re.fullmatch(r"[A-Z_]+", param.metavar)
            assert ok, (name, param.name, param.metavar)


def test_help_shows_no_bool_and_no_bare_str() -> None:
    for name in _commands():
        shown = _help([*name.split(), "--help"])
        assert "<bool>" not in shown and "<str>" not in shown and "list[" not in shown, name
    assert "<bool>" not in _help(["--help"])


# --- old spellings keep working -----------------------------------------------------------------

# An old spelling with a value each command refuses after parsing (a run or folder that is not
# there): a parse error would say "No such option" instead.
OLD_SPELLINGS = [
    (["gradcam", "nowhere", "--method", "gradcam"], "--method", "--cam-method"),
    (["gradcam", "nowhere", "--per-class", "2"], "--per-class", "--cam-per-class"),
    (["explain", "nowhere", "--method", "gradcam"], "--method", "--cam-method"),
    (["explain", "nowhere", "--per-class", "2"], "--per-class", "--cam-per-class"),
    (["attention", "nowhere", "--out-dir", "x"], "--out-dir", "--out"),
    (["attention", "nowhere", "--per-class=2"], "--per-class", "--cam-per-class"),
    (["compare", "nowhere", "elsewhere", "--per-class", "2"], "--per-class", "--cam-per-class"),
    (["fid", "nowhere", "elsewhere", "--per-class"], "--per-class", "--by-class"),
    (["fid", "nowhere", "elsewhere", "--json", "x.json"], "--json", "--json-out"),
]


@pytest.mark.parametrize(("args", "old", "new"), OLD_SPELLINGS)
def test_old_spellings_work_with_a_one_line_note(
    args: list[str], old: str, new: str, tmp_path: Path
) -> None:
    from cli import app

    result = CliRunner().invoke(app, [*args, "--runs-dir", str(tmp_path)] if args[0] != "fid"
                                else args)  # fmt: skip
    assert "No such option" not in result.output, result.output
    assert result.exit_code == 2 and "not found" in result.output, result.output
    notes = [line for line in result.output.splitlines() if "deprecated" in line]
    assert notes == [f"warning: {old} is deprecated, use {new}"], result.output


def test_an_old_spelling_reaches_the_new_option() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["gradcam", "run", "--method", "nope"])
    assert result.exit_code == 2 and "'--cam-method'" in result.output, result.output
    result = CliRunner().invoke(app, ["compare", "a", "b", "--per-class", "many"])
    assert result.exit_code == 2 and "'--cam-per-class'" in result.output, result.output


def test_rename_args_leaves_values_and_the_rest_alone() -> None:
    from commands.command import rename_args

    renamed = {"--method": "--cam-method"}
    args = ["--method=gradcam", "--name", "x", "--methods", "--", "--method"]
    assert rename_args(args, renamed) == [
        "--cam-method=gradcam", "--name", "x", "--methods", "--", "--method",
    ]  # fmt: skip


# --- presets and defaults -------------------------------------------------------------------------


def test_every_preset_option_defaults_to_quick_and_offers_the_same_names() -> None:
    from augment.gan.config import GAN_PRESETS
    from classify.training.presets import CLASSIFIER_PRESETS
    from core.presets import NO_PRESET
    from study.pipeline.config import PipelineConfig

    taking = _taking("--preset")
    assert set(taking) == {"train", "train-all", "gan-train", "cas", "pipeline"}
    assert {param.default for param in taking.values()} == {"quick"} == {PipelineConfig().preset}
    assert CLASSIFIER_PRESETS.choices[-1] == GAN_PRESETS.choices[-1] == NO_PRESET
    assert "quick" in CLASSIFIER_PRESETS.names and "quick" in GAN_PRESETS.names


def _captured(monkeypatch: pytest.MonkeyPatch, module: str, function: str, args: list[str]) -> Any:
    """The config a training command hands its trainer (which does not run)."""
    import importlib

    from cli import app

    seen = []
    monkeypatch.setattr(
        importlib.import_module(module), function, lambda cfg, **kw: seen.append(cfg)
    )
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return seen[0]


def test_a_bare_gan_train_is_the_measured_good_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from augment.gan.config import GAN_PRESETS, GanConfig

    cfg = _captured(monkeypatch, "augment.gan.trainer", "train_gan", ["gan-train"])
    # Not the textbook 3,000 iterations without the minibatch-std channel (under-trained): the
    # quick preset's 6,000, minibatch-std, and sampling with standing statistics.
    assert cfg == GAN_PRESETS.apply(GanConfig(), "quick")
    assert (cfg.iterations, cfg.minibatch_std) == (6000, True) and cfg.standing_stats > 0
    plain = _captured(monkeypatch, "augment.gan.trainer", "train_gan",
                      ["gan-train", "--preset", "none"])  # fmt: skip
    assert plain == GanConfig()


def test_a_bare_train_uses_the_quick_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    from classify.training.config import TrainConfig
    from classify.training.presets import CLASSIFIER_PRESETS

    cfg = _captured(monkeypatch, "classify.training.trainer", "train", ["train"])
    assert cfg == CLASSIFIER_PRESETS.apply(TrainConfig(), "quick")
    given = _captured(monkeypatch, "classify.training.trainer", "train",
                      ["train", "--epochs", "3", "--preset", "full"])  # fmt: skip
    assert (given.epochs, given.image_size) == (3, 64)


def test_preset_options_show_each_presets_value() -> None:
    shown = _help(["gan-train", "--help"])
    assert re.search(r"quick: 6000,\s+full: 20000", shown)
    assert re.search(r"none: 3000", shown)


def _field_defaults(cls: Any) -> dict[str, Any]:
    return {f.name: f.default for f in fields(cls)}


def _cli_value(value: Any, field: Any) -> Any:
    """An option's default as its dataclass field holds it."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and isinstance(field, tuple):
        return tuple(p for p in value.split(",") if p)
    if isinstance(value, str) and isinstance(field, int) and value.isdigit():
        return int(value)
    return value


def _configs() -> list[tuple[str, type, dict[str, str]]]:
    """(command, dataclass, option name -> field name where they differ)."""
    from augment.fid.config import FidConfig
    from augment.gan.config import GanConfig, SynthConfig
    from classify.explain.attention_run import AttentionOptions
    from classify.explain.cams import CamOptions
    from classify.training.config import TrainConfig
    from classify.training.train_all import TrainAllOptions
    from core.footwear import FootwearConfig
    from study.compare.config import CompareConfig
    from study.explain_config import ExplainOptions
    from study.pipeline.config import PipelineConfig

    return [
        ("train", TrainConfig, {}),
        ("train-all", TrainConfig, {}),
        ("train-all", TrainAllOptions, {}),
        ("gan-train", GanConfig, {}),
        ("synthesize", SynthConfig, {}),
        ("compare", CompareConfig, {}),
        ("explain", ExplainOptions, {}),
        ("pipeline", PipelineConfig, {}),
        ("fid", FidConfig, {}),
        ("data footwear", FootwearConfig, {}),
        ("attention", AttentionOptions, {}),
        ("gradcam", CamOptions, {"cam_method": "method"}),
    ]


@pytest.mark.parametrize(("command", "cls", "renamed"), _configs())
def test_dataclass_defaults_are_the_cli_defaults(command: str, cls: type, renamed: dict) -> None:
    defaults = _field_defaults(cls)
    checked = 0
    for param in _commands()[command].params:
        field = renamed.get(param.name, param.name)
        if param.param_type_name != "option" or field not in defaults:
            continue
        if defaults[field] is MISSING:  # a required option (synthesize --gan)
            continue
        assert _cli_value(param.default, defaults[field]) == defaults[field], (command, field)
        checked += 1
    assert checked >= 3, command


def test_evaluate_batch_size_is_the_library_default() -> None:
    from classify.checkpoint import DEFAULT_BATCH_SIZE

    assert _taking("--batch-size")["evaluate"].default == DEFAULT_BATCH_SIZE


# --- the app --------------------------------------------------------------------------------------


def test_version_is_the_packages() -> None:
    import cli
    from cli import app

    pyproject = (Path(cli.__file__).parent / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert version is not None
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"shoegan {version.group(1)}"
    scripts = pyproject.split("[project.scripts]")[1].split("\n[")[0]
    assert re.search(r'^shoegan = "cli:app"', scripts, re.MULTILINE)
    assert re.search(r'^cli = "cli:app"', scripts, re.MULTILINE)  # the old name keeps working


def test_version_falls_back_to_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    import cli

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", cli.version())


def test_help_lists_the_commands_in_workflow_order() -> None:
    from cli import COMMAND_ORDER

    shown = _help(["--help"])
    listed = re.findall(r"^│ ([a-z][a-z-]*)\s{2,}", shown, flags=re.MULTILINE)
    assert listed == list(COMMAND_ORDER)
    assert listed[:7] == [
        "data", "train", "train-all", "gan-train", "synthesize", "compare", "pipeline",
    ]  # fmt: skip
    assert set(listed) == {name.split()[0] for name in _commands()}


def test_help_paragraphs_rewrap_and_main_commands_show_an_example() -> None:
    from commands.command import rewrap

    assert rewrap("One line.\n\nA long\n    paragraph.\n") == "One line.\n\nA long paragraph."
    for name, command in _commands().items():
        paragraphs = (command.help or "").split("\n\n")
        assert all("\n" not in p for p in paragraphs), name  # Rich wraps each paragraph
        assert len(paragraphs[0]) <= 100 or name == "data split", (name, paragraphs[0])
    for name in ("train", "gan-train", "synthesize", "compare", "pipeline", "data"):
        assert re.search(rf"^\s*cli {name}\b", _help([name, "--help"]), re.MULTILINE), name
