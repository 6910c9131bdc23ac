"""A LoRA experiment without a base (model.lora.base_ckpt: null) trains its base on
first use, at a path derived from the base's settings; a second use reuses it; a
clash or an unfinished base at that path is an error, and nothing is overwritten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
import pytest
import yaml

from src.lora.base_run import SETTINGS_FILE, base_run_dir, base_settings, find_or_train_base
from src.utils.errors import UserInputError
from src.utils.instantiators import instantiate_model
from tests.conftest import compose_config, train_run

TINY_BASE = ["trainer.max_epochs=3"]


def test_settings_name_the_base(tmp_path: Path) -> None:
    """Equal settings, one directory; another setting of the base, another directory;
    a setting that does not change the weights (its tags), the same one."""
    settings = base_settings("lora_digits_base", [], str(tmp_path))
    again = base_settings("lora_digits_base", [], str(tmp_path))
    shorter = base_settings("lora_digits_base", TINY_BASE, str(tmp_path))
    tagged = base_settings("lora_digits_base", ["tags=[mine]"], str(tmp_path))
    place = base_run_dir(tmp_path, "lora_digits_base", settings)
    assert place.name.startswith("lora_digits_base_")
    assert base_run_dir(tmp_path, "lora_digits_base", again) == place
    assert base_run_dir(tmp_path, "lora_digits_base", tagged) == place
    assert base_run_dir(tmp_path, "lora_digits_base", shorter) != place
    assert settings["data"]["digits"] == [0, 1, 2, 3, 4] and settings["trainer"]["max_epochs"] == 30


def fake_base(tmp_path: Path, settings: dict, status: str = "finished") -> Path:
    place = base_run_dir(tmp_path / "bases", "lora_digits_base", settings)
    place.mkdir(parents=True)
    (place / SETTINGS_FILE).write_text(yaml.safe_dump(settings))
    (place / "run_status.json").write_text(json.dumps({"status": status}))
    return place


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("damage", "message"),
    [("other_settings", "trained with other settings"), ("unfinished", "holds no finished")],
)
def test_a_clash_is_an_error_and_changes_nothing(tmp_path: Path, damage: str, message: str):
    settings = base_settings("lora_digits_base", TINY_BASE, str(tmp_path))
    if damage == "other_settings":
        place = fake_base(tmp_path, settings)
        (place / SETTINGS_FILE).write_text(yaml.safe_dump({**settings, "seed": 7}))
    else:
        place = fake_base(tmp_path, settings, status="failed")
    before = snapshot(tmp_path)
    with pytest.raises(UserInputError, match=message):
        find_or_train_base("lora_digits_base", TINY_BASE, tmp_path / "bases", str(tmp_path), "")
    assert snapshot(tmp_path) == before


def test_no_base_and_no_base_experiment(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", ["experiment=lora_digits", "model.lora.base_experiment=null"], tmp_path
    )
    with pytest.raises(UserInputError, match="base_experiment is not set"):
        instantiate_model(cfg.model, hydra.utils.instantiate(cfg.data))


def test_a_bad_base_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not compose.*no_such_key"):
        base_settings("lora_digits_base", ["trainer.no_such_key=1"], str(tmp_path))


@pytest.mark.slow
def test_lora_trains_its_base_once(tmp_path: Path) -> None:
    """experiment=lora_digits with no base: the 0-4 base is trained (and learns), the
    adapter records it and learns 5-9; a second LoRA run reuses the same base."""
    overrides = [
        "experiment=lora_digits",
        f"model.lora.base_overrides={TINY_BASE}",
        "trainer.max_epochs=8",
    ]
    metrics, _ = train_run(tmp_path / "first", *overrides)
    (base,) = (tmp_path / "first" / "lora_bases").iterdir()
    status = json.loads((base / "run_status.json").read_text())
    assert status["status"] == "finished" and status["metrics"]["test/acc"] > 0.9
    adapter = json.loads((tmp_path / "first" / "adapter" / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]).parent.parent == base
    assert metrics["test/acc"] > 0.8  # digits 5 to 9 from the 0-4 base's features

    before = snapshot(base)
    second = tmp_path / "second"
    _, objects = train_run(
        second, *overrides, f"model.lora.base_runs_dir={base.parent}", "model.lora.r=2"
    )
    assert snapshot(base) == before  # found, not trained again
    adapter = json.loads((second / "adapter" / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]).parent.parent == base
    assert not (second / "lora_bases").exists()


def test_a_trained_base_names_its_final_directory(tmp_path: Path, caplog) -> None:
    """The base trains in a .partial-<pid> directory that is renamed when it has finished:
    what it saved names the final directory, so its checkpoint resumes there with its
    best-so-far state (Lightning drops it when the recorded dirpath differs, and the
    best checkpoint it records would be a path that no longer exists)."""
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    tiny = ["trainer.max_epochs=2", "+trainer.limit_train_batches=8", "logger=csv"]
    with caplog.at_level("INFO"):
        base = find_or_train_base(
            "lora_digits_base", tiny, tmp_path / "bases", str(tmp_path / "data"), str(tmp_path)
        )
    partial = str(base.with_name(f"{base.name}.partial-{os.getpid()}"))  # where it trained
    assert not Path(partial).exists() and (base / "run_status.json").is_file()
    for path in base.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json", ".csv"):
            assert partial not in path.read_text(), path
    hydra_saved = yaml.safe_load((base / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra_saved["runtime"]["output_dir"] == str(base) == hydra_saved["run"]["dir"]
    assert str(base) in (base / "run_metadata.json").read_text()  # its command names base
    log_lines = (base / "train.log").read_text().splitlines()
    assert log_lines[-1].startswith(f"[LoRA base] trained in {partial}, renamed {base}")

    last = torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in last["callbacks"].items() if k.startswith("RunCheckpoint")]
    assert partial not in repr(state)
    resumed = ModelCheckpoint(dirpath=base / "checkpoints", monitor="val/acc", mode="max")
    resumed.load_state_dict(state)  # as Lightning does resuming in the base's directory
    assert resumed.best_model_score is not None and Path(resumed.best_model_path).is_file()
    assert Path(resumed.last_model_path) == base / "checkpoints" / "last.ckpt"
    assert status_metric(base) > 0.5  # the base learned: five classes, chance 0.2
    # the console says where it trains and what happens to that directory
    assert f"Training the LoRA base in {partial}, renamed {base} once it has" in caplog.text
    assert f"LoRA base trained: {base} (renamed from {Path(partial).name}" in caplog.text


def status_metric(run_dir: Path) -> float:
    return json.loads((run_dir / "run_status.json").read_text())["metrics"]["test/acc"]
