"""The one entry-point skeleton (src/utils/entry_point.py): each script's ``--help`` shows
its own options, and a user error is one message and exit status 1, without Lightning."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli


def groups(help_text: str) -> set[str]:
    """The groups the help lists (``group: option, ...`` lines after its groups header)."""
    listed = help_text.split("== Config groups (group=option) ==", 1)[-1]
    return set(re.findall(r"^([a-z_/]+): ", listed, flags=re.MULTILINE))


def test_a_report_lists_its_own_options_not_the_training_groups() -> None:
    result = run_cli("reports/study_report.py", "--help", timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("study_report: Report on an Optuna study")
    for key in ("trial:", "report_dir:", "train_best:", "train_args:"):
        assert key in out
    assert groups(out) == {"hparams_search"}  # composed from train.yaml only to find its base
    assert "digits_optuna" in out
    assert "ckpt_path" not in out and "optimized_metric" not in out  # train.yaml's own keys


def test_a_light_tool_lists_its_keys_and_groups_alone() -> None:
    result = run_cli("tools/split_folder.py", "--help", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "# the data folder (holds raw/<class>/<file>)\nroot: ???" in result.stdout
    assert groups(result.stdout) == {"paths"}


def test_train_help_keeps_the_training_groups_and_keys() -> None:
    result = run_cli("train.py", "--help", timeout=300)
    assert result.returncode == 0, result.stderr
    assert {"data", "model", "trainer", "callbacks", "experiment"} <= groups(result.stdout)
    assert "optimized_metric:" in result.stdout


def test_export_help_includes_the_eval_keys_it_builds_on() -> None:
    result = run_cli("tools/export.py", "--help", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "opset:" in result.stdout and "--- from eval.yaml ---" in result.stdout
    assert "run_dir:" in result.stdout


def test_user_error_in_a_light_tool_is_one_message(tmp_path: Path) -> None:
    result = run_cli("tools/split_folder.py", f"root={tmp_path / 'none'}", timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "none").exists()
