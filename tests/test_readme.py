"""The README's shell blocks run as printed: every command composes (fast), and the cheap
ones run for real in a shell that has only the README's own set-up step (slow)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import CONFIGS, ROOT

README = ROOT / "README.md"
# the root config each entry point composes (its @hydra.main config_name)
ENTRY_CONFIGS = {
    "src/train.py": "train",
    "src/eval.py": "eval",
    "src/tools/find_lr_batch_size.py": "lr_find",
    "src/tools/summary.py": "summary",
    "src/tools/export.py": "export",
    "src/tools/predict.py": "predict",
    "src/reports/cv_report.py": "cv_report",
    "src/reports/study_report.py": "study_report",
    "src/vimh/generate.py": "generate_vimh",
    "src/lora/merge.py": "merge_lora",
    "src/lora/fuse.py": "fuse",
}
# what a run here cannot have: an accelerator, a cluster, a run or file the user names
NOT_RUNNABLE_HERE = re.compile(
    r"<[^>]+>|trainer=(gpu|ddp|mps|rocm)|hydra/launcher=slurm|hparams_search=|data=mnist|\.\.\."
)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            found.append(shlex.join(words))
    return found


def readme_commands() -> list[str]:
    return [cmd for block in shell_blocks(README.read_text()) for cmd in commands(block)]


def python_commands() -> list[list[str]]:
    """``python src/... overrides`` commands as word lists (``uv run`` prefix dropped)."""
    found = []
    for cmd in readme_commands():
        words = shlex.split(cmd)
        if words[:2] == ["uv", "run"]:
            words = words[2:]
        if words and words[0] == "python" and len(words) > 1 and words[1].startswith("src/"):
            found.append(words[1:])
    return found


def first_combination(overrides: list[str]) -> list[str]:
    """A multirun's first job: each sweep (``a=1,2``, ``range(5)``, ``choice(..)``) at its
    first value."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
        if o.is_sweep_override()
        else o.input_line
        for o in parsed
    ]


def test_readme_shows_how_to_enter_the_environment_before_its_first_python_command() -> None:
    lines = [c for block in shell_blocks(README.read_text()) for c in commands(block)]
    first_python = next(i for i, c in enumerate(lines) if c.startswith("python "))
    setup = lines[:first_python]
    assert any("source .venv/bin/activate" in c for c in setup), (
        "The README runs `python ...` before it shows `source .venv/bin/activate`"
    )


def test_every_readme_make_target_exists() -> None:
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", (ROOT / "Makefile").read_text(), re.M))
    used = {shlex.split(c)[1] for c in readme_commands() if c.startswith("make ")}
    assert used and used <= targets, (
        f"README names make targets the Makefile lacks: {used - targets}"
    )


# the make targets LHT's and NSMT's Makefiles taught their users, and what each one runs here
LHT_NSMT_TARGETS = {
    "help": "help", "clean": "clean", "clean-logs": "clean-logs", "format": "format",
    "sync": "sync", "test": "test", "test-full": "test-all", "train": "train",
    "a": "activate", "d": "deactivate", "c": "clean", "cl": "clean-logs", "sy": "sync",
    "t": "test", "ta": "test-all", "tb": "tensorboard", "dclean": "data-clean",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LHT_NSMT_TARGETS))
def test_lht_and_nsmt_make_targets_run_what_they_ran_there(name: str) -> None:
    """`make test-full`, `make sync` (LHT) and `make a`, `make d`, `make sy`, `make ta`
    (NSMT; `make help` named `make a` and `make d`) stopped with "No rule to make target"."""

    def dry_run(target: str) -> subprocess.CompletedProcess:
        command = ["make", "-n", "--no-print-directory", target]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)

    done, same = dry_run(name), dry_run(LHT_NSMT_TARGETS[name])
    assert done.returncode == 0, done.stderr
    assert done.stdout == same.stdout and done.stdout.strip()


def test_make_help_lists_every_described_target_in_one_column() -> None:
    """`make help` (README: "prints them all") shows each `## ` target once, and every
    description starts in the same column however long the longest target name is."""
    described = re.findall(r"^([a-zA-Z0-9_-]+):.*## ", (ROOT / "Makefile").read_text(), re.M)
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in out.stdout.splitlines()]
    assert sorted(line.split()[0] for line in lines) == sorted(described)
    width = max(map(len, described))
    columns = {line.index(line.split(maxsplit=1)[1]) for line in lines}
    assert columns == {2 + width + 2}, f"descriptions start in columns {sorted(columns)}"


@pytest.mark.parametrize("words", python_commands(), ids=shlex.join)
def test_every_readme_python_command_composes(words: list[str]) -> None:
    """Each command's overrides name config options and keys that exist."""
    script, *args = words
    assert script in ENTRY_CONFIGS, f"README runs {script}, which is not an entry point"
    # a <placeholder> is the user's to fill in: any plain word composes in its place
    args = [re.sub(r"<[^>]+>", "placeholder", a) for a in args if a not in ("-m", "--multirun")]
    overrides = first_combination(args)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(ENTRY_CONFIGS[script], overrides=overrides, return_hydra_config=True)
    assert cfg.get("paths") is not None


def runnable_commands() -> list[str]:
    return [
        c for c in readme_commands() if c.startswith("python ") and not NOT_RUNNABLE_HERE.search(c)
    ]


def cheap(cmd: str, log_dir: Path) -> str:
    """The command with overrides that keep it to a batch or two, logs in ``log_dir``."""
    extra = [f"paths.log_dir={log_dir}", "extras.print_config=false"]
    if "src/train.py" in cmd:
        extra += ["trainer.max_epochs=1"] if "debug=" in cmd else ["debug=fdr"]
        extra += ["++trainer.limit_train_batches=3", "++trainer.limit_val_batches=2"]
    return f"{cmd} {shlex.join(extra)}"


@pytest.mark.slow
def test_cheap_readme_commands_run_as_printed(tmp_path: Path) -> None:
    """In a shell with the system's PATH only, the README's set-up step (activation) makes
    its printed commands work: `python` is the project's."""
    setup = next(c for c in readme_commands() if "activate" in c)
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "OMP_NUM_THREADS": "1"}
    ran = runnable_commands()
    assert len(ran) >= 5, ran
    for cmd in ran:
        done = subprocess.run(
            ["bash", "-c", f"{setup} && {cheap(cmd, tmp_path)}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{cmd}\n{done.stderr[-3000:]}"


def listed_options(cell: str) -> set[str]:
    """The options a table cell names: `a`, `b_{1,2}` (each as `b_1`, `b_2`)."""
    names: set[str] = set()
    for name in re.findall(r"`([^`]+)`", cell):
        stem, braces, rest = name.partition("{")
        if braces:
            choices, _, tail = rest.partition("}")
            names |= {stem + choice + tail for choice in choices.split(",")}
        else:
            names.add(name)
    return names


def test_readme_config_groups_table_names_every_option() -> None:
    """The README's table of config groups lists each group's options, no more, no fewer."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Config groups", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    checked = []
    for row in table.splitlines()[2:]:
        group_cell, options_cell = row.split(" | ")[:2]
        group = group_cell.strip("| `")
        folder = Path(CONFIGS) / group
        if not folder.is_dir():  # extras/paths/hydra rows, local
            continue
        on_disk = {p.stem for p in folder.glob("*.yaml")}
        listed = listed_options(options_cell)
        # a fork that adds configs/data/wine.yaml (docs/bring_your_own.md) is told what to do
        assert listed == on_disk, (
            f"README.md's '## Config groups' table, row `{group}`: add "
            f"{sorted(on_disk - listed)} (configs/{group}/ has them), remove "
            f"{sorted(listed - on_disk)} (no such file)"
        )
        checked.append(group)
        # sub-groups named in the notes with their options: `model/optimizer` (`adam`, ...)
        for sub, options in re.findall(r"`([\w/]+)` \(([^)]*`[^)]*)\)", row):
            assert listed_options(options) == {
                p.stem for p in (Path(CONFIGS) / sub).glob("*.yaml")
            }, sub
            checked.append(sub)
    assert {"data", "model", "callbacks", "experiment", "model/scheduler"} <= set(checked)


@pytest.mark.parametrize("target", ["eval", "export", "merge-lora"])
def test_a_run_target_without_run_says_how_before_any_tool_starts(target: str) -> None:
    """`make eval` alone started eval.py, which made a logs/eval/runs/<timestamp> directory
    and then asked for run_dir=<training run> or ckpt_path=, the tool's words, not make's."""
    done = subprocess.run(
        ["make", "-s", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"make {target} needs the run: make {target} RUN=logs/train/runs/<run>" in done.stderr
    given = subprocess.run(
        ["make", "-s", "-n", target, "RUN=logs/train/runs/x"], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert given.returncode == 0 and "run_dir=logs/train/runs/x" in given.stdout
