"""Faults a long job meets: a full disk, SIGTERM from a scheduler, a refused GAN resume.

- a write that fails (ENOSPC, EACCES) is a one-line error naming the file and, for a full disk,
  the space needed and free; the file it would have replaced stays intact, no temporary file or
  half history line is left; ``cli train`` then exits with 2, its lock released; the same on a
  real, tiny tmpfs (skipped where it cannot be mounted);
- SIGTERM stops ``cli train``, ``cli gan-train`` and ``cli pipeline`` (real processes, a real
  signal) at the next step: exit code 143, ``last.pt`` saved, the lock gone, the resume command printed, and
  ``--resume`` completes the run; a repeated SIGTERM does not break the save;
- a GAN ``--resume`` refused (other training images) leaves the run folder byte for byte as it was;
- ``--feature-extractor`` is no option of any command (the random-conv stand-in's numbers are not
  FID); the tests reach the stand-in through ``$SHOEGAN_TEST_FEATURE_EXTRACTOR``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import UserError
from core.interrupts import InterruptGuard, exit_status, sigterm_as_interrupt, terminated
from core.io import append_jsonl, atomic_write_bytes, human_bytes, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # seconds a subprocess may take before the test fails
TINY_TRAIN = ["--image-size", "32", "--width", "0.0625", "--batch-size", "16", "--device", "cpu",
              "--seed", "3", "--no-progress"]  # fmt: skip
TINY_GAN = ["--batch-size", "8", "--ngf", "8", "--ndf", "8", "--z-size", "16", "--embed-dim", "8",
            "--fid-samples", "0", "--grid-columns", "4", "--log-every", "1", "--device", "cpu",
            "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("shapes") / "data", "shapes")


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("colours") / "data", "colours", 16, 2)


def _leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes and lock files left in ``folder``."""
    return sorted(
        p.name for p in folder.rglob(".*") if p.name.endswith(".tmp") or p.name == ".lock"
    )


# --- a full disk ----------------------------------------------------------------------------------


def _no_space(
    monkeypatch: pytest.MonkeyPatch, target: str, after: int = 0, code: int = errno.ENOSPC
) -> dict[str, int]:
    """Make ``os.write`` to files whose name contains ``target`` fail (ENOSPC, or ``code``) after
    ``after`` such writes succeeded (the file behind a descriptor is read from /proc)."""
    real_write, calls = os.write, {"n": 0}

    def write(fd: int, data: bytes) -> int:
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if target in Path(name).name:
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(code, os.strerror(code))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return calls


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (10, 2_100, 95_000_000, 999_600, 3.2e9)] == [
        "10 bytes", "2.1 kB", "95 MB", "1.0 MB", "3.2 GB"
    ]  # fmt: skip


@needs_proc
def test_a_failed_atomic_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"old")
    _no_space(monkeypatch, ".last.pt.")
    with pytest.raises(UserError) as err:
        atomic_write_bytes(target, b"x" * 5_000)
    message = str(err.value)
    assert message.startswith(f"No space left on device writing {target} (needs ~5.0 kB, ")
    assert " free on /" in message and message.endswith("choose another output folder")
    assert "\n" not in message
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


@needs_proc
def test_a_failed_history_line_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = tmp_path / "history.jsonl"
    append_jsonl(history, {"epoch": 1})
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 10:  # the first half lands, the rest finds the disk full
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(UserError, match=f"writing {history}"):
        append_jsonl(history, {"epoch": 2, "loss": 0.123456789})
    monkeypatch.undo()
    assert history.read_text() == '{"epoch": 1}\n'


@needs_proc
@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.EACCES, "check the folder's permissions or choose another output folder"),
        (errno.EROFS, "choose another output folder"),
    ],
)
def test_a_refused_write_is_one_line(
    code: int, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_space(monkeypatch, ".x.json.", code=code)
    with pytest.raises(UserError) as err:
        atomic_write_bytes(tmp_path / "x.json", b"{}")
    assert str(err.value).startswith(f"{os.strerror(code)} writing {tmp_path / 'x.json'}")
    assert str(err.value).endswith(says) and "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


@needs_proc
def test_cli_train_on_a_full_disk_exits_2_and_keeps_last_pt(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app

    run = tmp_path / "x"
    calls = _no_space(monkeypatch, ".last.pt.", after=1)  # epoch 1's last.pt lands, epoch 2's not
    args = ["train", "--data", str(shapes), "--runs-dir", str(tmp_path), "--name", "x",
            "--epochs", "3", *TINY_TRAIN]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2, out.output
    assert calls["n"] == 2 and "Traceback" not in out.output
    errors = [line for line in out.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, out.output
    assert errors[0].startswith(
        f"error: No space left on device writing {run / 'last.pt'} (needs ~"
    )
    assert " free on " in errors[0]
    monkeypatch.undo()
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the last good checkpoint
    assert _leftovers(run) == []


@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted on ``folder`` (skips the test where that is refused)."""
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def _pages(path: Path, page: int = 4096) -> int:
    return sum(-(-p.stat().st_size // page) * page for p in path.rglob("*") if p.is_file())


def test_cli_train_on_a_real_full_tmpfs(shapes: Path, tmp_path: Path) -> None:
    from cli import app

    runner = CliRunner()
    disk = tmp_path / "disk"
    first = runner.invoke(app, ["train", "--data", str(shapes), "--runs-dir", str(disk), "--name",
                                "x", "--epochs", "1", *TINY_TRAIN])  # fmt: skip
    assert first.exit_code == 0, first.output
    checkpoint = (disk / "x" / "last.pt").stat().st_size
    # Room for the run as it is, small files and half a checkpoint: the next one cannot land.
    with tmpfs(tmp_path / "mnt", _pages(disk / "x") + 8 * 4096 + checkpoint // 2) as mount:
        shutil.copytree(disk / "x", mount / "x")
        out = runner.invoke(app, ["train", "--runs-dir", str(mount), "--name", "x", "--resume",
                                  "--epochs", "2", "--no-progress"])  # fmt: skip
        assert out.exit_code == 2, out.output
        errors = [line for line in out.output.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and "Traceback" not in out.output, out.output
        assert errors[0].startswith(f"error: No space left on device writing {mount / 'x'}/")
        assert f"free on {mount}): free space or choose another output folder" in errors[0]
        assert f"(needs ~{human_bytes(checkpoint)[:-3]}" in errors[0]  # the checkpoint's size
        assert load_checkpoint(mount / "x" / "last.pt")["epoch"] == 1
        assert _leftovers(mount / "x") == []


# --- SIGTERM --------------------------------------------------------------------------------------

# ``cli`` with every critical section (one training step, one GAN iteration) made slower, so that
# the signal reliably lands in a run that is still training.
SLOW_CLI = """
import time
import core.interrupts as interrupts

enter = interrupts._Critical.__enter__


def slow(self):
    enter(self)
    time.sleep({delay})


interrupts._Critical.__enter__ = slow
from cli import app

app(prog_name="cli")
"""


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SHOEGAN_CACHE_DIR": str(tmp / "cache"),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _start_slow(args: list[str], tmp: Path, delay: float) -> subprocess.Popen[str]:
    shim = tmp / "slow_cli.py"
    shim.write_text(SLOW_CLI.format(delay=delay))
    return subprocess.Popen([sys.executable, str(shim), *args], cwd=ROOT, env=_env(tmp), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=_env(tmp), text=True,
                          capture_output=True, timeout=TIMEOUT)  # fmt: skip


def _history(run: Path) -> list[dict]:
    """The complete lines of a (possibly still growing) history.jsonl."""
    path = run / "history.jsonl"
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def _wait_for(predicate: Callable[[], bool], job: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if job.poll() is not None:
            raise AssertionError(f"ended before {what}: {job.communicate()[0]}")
        if time.monotonic() > deadline:
            job.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def sigterm_caught() -> Iterator[list[int]]:
    """SIGTERM recorded (not fatal to pytest) outside the handlers under test; the list of
    signals that got through to it."""
    leaked: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: leaked.append(signum))
    yield leaked
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_in_a_step_is_deferred_and_a_repeat_ignored(sigterm_caught: list[int]) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    reached = False
    with InterruptGuard() as guard:
        with pytest.raises(KeyboardInterrupt), guard.critical():
            os.kill(os.getpid(), signal.SIGTERM)  # recorded, raised when the step ends
            os.kill(os.getpid(), signal.SIGTERM)  # a repeat: no "stop at once", no dirty state
            reached = True
        assert reached and not guard.dirty and not guard.pending
        assert terminated() and exit_status() == 143
    assert signal.getsignal(signal.SIGTERM) is handler and sigterm_caught == []


def test_sigterm_outside_the_steps_is_a_keyboard_interrupt(sigterm_caught: list[int]) -> None:
    with sigterm_as_interrupt():
        assert not terminated() and exit_status() == 130
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # while cleaning up: ignored
        assert exit_status() == 143
    assert sigterm_caught == []


def test_sigterm_stops_cli_train_at_a_step_then_resume_completes(
    shapes: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run = runs / "t"
    args = ["train", "--data", str(shapes), "--runs-dir", str(runs), "--name", "t", "--epochs",
            "4", *TINY_TRAIN]  # fmt: skip
    job = _start_slow(args, tmp_path, delay=0.25)
    _wait_for(lambda: len(_history(run)) >= 1, job, "the first epoch")
    job.send_signal(signal.SIGTERM)
    log = job.communicate(timeout=TIMEOUT)[0]
    assert job.returncode == 143, log
    assert "terminated (SIGTERM): " in log and "Traceback" not in log
    assert f"continue with `cli train --name t --runs-dir {runs} --resume`" in log
    assert _leftovers(run) == []  # the lock released, no temporary file
    saved = load_checkpoint(run / "last.pt")
    assert saved["epoch"] < 4, "stopped early"

    resumed = _cli(["train", "--name", "t", "--runs-dir", str(runs), "--resume", "--no-progress"],
                   tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [r["epoch"] for r in _history(run)] == [1, 2, 3, 4]
    assert load_checkpoint(run / "last.pt")["epoch"] == 4


def test_sigterm_twice_stops_cli_gan_train_then_resume_completes(
    colours: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run = runs / "g"
    args = ["gan-train", "--data", str(colours), "--runs-dir", str(runs), "--name", "g",
            "--iterations", "12", "--eval-every", "12", *TINY_GAN]  # fmt: skip
    job = _start_slow(args, tmp_path, delay=0.25)
    _wait_for(lambda: len(_history(run)) >= 1, job, "the first iteration")
    job.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # a scheduler and torchrun both signalling: one stop
    log = job.communicate(timeout=TIMEOUT)[0]
    assert job.returncode == 143, log
    assert "terminated (SIGTERM): " in log and "Traceback" not in log
    assert f"continue with `cli gan-train --name g --runs-dir {runs} --resume`" in log
    assert _leftovers(run) == []
    reached = load_checkpoint(run / "last.pt")["iteration"]
    assert 1 <= reached < 12

    resumed = _cli(["gan-train", "--name", "g", "--runs-dir", str(runs), "--resume",
                    "--no-progress"], tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert load_checkpoint(run / "last.pt")["iteration"] == 12
    assert [r["iteration"] for r in _history(run) if r["kind"] == "train"] == list(range(1, 13))


@pytest.mark.slow
def test_sigterm_stops_cli_pipeline_in_a_training_step_and_a_rerun_finishes(
    shapes: Path, tmp_path: Path
) -> None:
    """The study's classifier step stopped by SIGTERM: exit 143, the run saved, no lock left; the
    same command again resumes it and finishes the study."""
    from commands.configs import FEATURES_ENV

    folders = {k: tmp_path / k for k in ("runs", "synthetic", "reports")}
    args = ["pipeline", "--data", str(shapes), "--runs-dir", str(folders["runs"]),
            "--synthetic-dir", str(folders["synthetic"]), "--reports-dir",
            str(folders["reports"]), "--epochs", "3", "--width", "0.0625", "--image-size", "32",
            "--gan-iterations", "4", "--gan-width", "8", "--per-class", "6", "--cam-per-class",
            "0", "--models", "resnet50", "--arms", "real", "--no-cas", "--device", "cpu"]  # fmt: skip
    env = {FEATURES_ENV: "random-conv"}
    shim = tmp_path / "slow_cli.py"
    shim.write_text(SLOW_CLI.format(delay=0.25))
    job = subprocess.Popen([sys.executable, str(shim), *args], cwd=ROOT,
                           env={**_env(tmp_path), **env}, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)  # fmt: skip

    def first_epoch() -> bool:
        return any(_history(p.parent) for p in folders["runs"].glob("*/config.json"))

    _wait_for(first_epoch, job, "the first classifier epoch")
    job.send_signal(signal.SIGTERM)
    log = job.communicate(timeout=TIMEOUT)[0]
    assert job.returncode == 143, log
    assert "terminated (SIGTERM)" in log and "Traceback" not in log
    stopped = [p.parent for p in folders["runs"].glob("*/last.pt")]
    assert len(stopped) == 1 and _leftovers(folders["runs"]) == []
    assert load_checkpoint(stopped[0] / "last.pt")["epoch"] < 3

    again = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT,
                           env={**_env(tmp_path), **env}, text=True, capture_output=True,
                           timeout=TIMEOUT)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert [r["epoch"] for r in _history(stopped[0])] == [1, 2, 3]
    assert list(folders["runs"].glob("*-study.json")), again.stdout


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@needs_proc
def test_sigterm_to_every_process_of_a_two_process_run(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    """As Slurm's scancel does: the launcher (torchrun's agent, which forwards the signal) and
    both ranks get SIGTERM; the ranks stop after the same step, rank 0 saves, all exit 143."""
    data = make_dataset(tmp_path / "data", "shapes", 12, 2, size=16)
    runs = tmp_path / "runs"
    run = runs / "d"
    args = ["train", "--data", str(data), "--runs-dir", str(runs), "--name", "d", "--epochs", "400",
            "--epoch-size", "8", "--batch-size", "8", "--image-size", "16", "--width", "0.0625",
            "--device", "cpu", "--nproc", "2", "--no-progress"]  # fmt: skip
    env = {**_env(tmp_path), "SHOEGAN_DIST_TIMEOUT": "30"}
    launcher = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    _wait_for(lambda: len(_history(run)) >= 1, launcher, "the first epoch")
    for pid in [launcher.pid, *_children(launcher.pid)]:
        os.kill(pid, signal.SIGTERM)
    log = launcher.communicate(timeout=TIMEOUT)[0]
    assert launcher.returncode == 143, log
    assert "terminated (SIGTERM): " in log and "--resume" in log
    assert _leftovers(run) == []
    load_checkpoint(run / "last.pt")


# --- a refused GAN resume -------------------------------------------------------------------------


def test_a_refused_gan_resume_leaves_the_run_folder_as_it_was(
    colours: Path,
    make_dataset: Callable[..., Path],
    tree_digest: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    from cli import app

    runs = tmp_path / "runs"
    first = CliRunner().invoke(app, ["gan-train", "--data", str(colours), "--runs-dir", str(runs),
                                     "--name", "g", "--iterations", "2", "--eval-every", "2",
                                     *TINY_GAN])  # fmt: skip
    assert first.exit_code == 0, first.output
    other = make_dataset(tmp_path / "other", "colours", 16, 2, seed=7)  # same classes, new images
    before = tree_digest(runs)
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()}
    refused = CliRunner().invoke(app, ["gan-train", "--runs-dir", str(runs), "--name", "g",
                                       "--resume", "--data", str(other), "--iterations", "4",
                                       "--no-progress"])  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "the training images differ" in refused.output
    assert tree_digest(runs) == before
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()} == stamps


# --- the stand-in feature extractor -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["fid", "gan-train", "synthesize", "pipeline"])
def test_feature_extractor_is_no_option(command: str) -> None:
    from cli import app

    out = CliRunner().invoke(app, [command, "--feature-extractor", "random-conv"])
    assert out.exit_code == 2 and "No such option: --feature-extractor" in out.output, out.output


def test_the_stand_in_is_reached_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from augment.fid.config import FidConfig
    from commands.configs import FEATURES_ENV, environment_fields
    from core.distributed import DistConfig

    assert environment_fields(FidConfig) == {}
    monkeypatch.setenv(FEATURES_ENV, "random-conv")
    with pytest.warns(UserWarning, match="not FID"):
        assert environment_fields(FidConfig) == {"feature_extractor": "random-conv"}
    assert environment_fields(DistConfig) == {}  # no such field: nothing, no warning


def test_files_written_atomically_get_the_mode_open_gives(tmp_path: Path) -> None:
    """A report or run file is as readable as any file the user makes (not mkstemp's 0o600)."""
    import stat

    from core import io

    old = os.umask(0o022)
    io._file_mode.cache_clear()
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        io.atomic_write_bytes(tmp_path / "report.html", b"<html></html>")
        io.write_json(tmp_path / "summary.json", {"a": 1})
        assert stat.S_IMODE(plain.stat().st_mode) == 0o644
        for name in ("report.html", "summary.json"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    finally:
        os.umask(old)
        io._file_mode.cache_clear()
