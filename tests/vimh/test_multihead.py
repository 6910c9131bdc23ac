"""The multihead module and its nets: parameter counts, what each head kind learns on
generated simple_saw notes, and a broken head that the learning check must catch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch

from src.models.components.head_kinds import head_loss, predicted_values
from src.models.components.head_metrics import HeadMetrics
from src.models.components.head_specs import label_classes, label_values
from src.train import train
from src.utils.instantiators import fill_from_data
from src.vimh.datamodule import VIMHDataModule
from src.vimh.heads import head_specs
from tests.conftest import CONFIGS, compose_config, vimh_overrides

# the spec of the default data=vimh (configs/synth/simple_saw.yaml): the parameter
# counts in the vimh_* model config names refer to it (both heads classification)
SIMPLE_SAW = {
    "parameter_names": ["note_number", "note_velocity"],
    "parameter_mappings": {
        "note_number": {"min": 40, "max": 88, "step": 1},
        "note_velocity": {"min": 40, "max": 127, "step": 1},
    },
}
DEFAULT_SPEC = {"input_shape": [1, 32, 32], "heads": head_specs(SIMPLE_SAW)}
NET_CONFIGS = sorted(p.stem for p in Path(CONFIGS, "model").glob("vimh_*.yaml"))
# the names that claim a size (vimh_mlp claims none)
SIZED_CONFIGS = [name for name in NET_CONFIGS if re.search(r"_\d+k$", name)]


@pytest.mark.parametrize("model", SIZED_CONFIGS)
def test_net_config_names_tell_the_parameter_count(model: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"model={model}", "data=vimh"], tmp_path).model
    fill_from_data(cfg, DEFAULT_SPEC)
    count = sum(p.numel() for p in hydra.utils.instantiate(cfg.net).parameters())
    named = int(re.search(r"_(\d+)k$", model).group(1)) * 1000
    assert abs(count - named) <= 0.1 * named, f"{model} has {count} parameters"


def test_the_readme_names_every_sized_net() -> None:
    """The README's list of nets (its "Nets:" line) has every sized config, 38k and 68k too."""
    text = (Path(CONFIGS).parent / "README.md").read_text()
    line = re.search(r"^Nets: (.*?)`make ca`", text, re.MULTILINE | re.DOTALL).group(1)
    listed = {
        f"{family}_{size}"
        for family, sizes in re.findall(r"(vimh_\w+?)_\{([\w,]+)\}", line)
        for size in sizes.split(",")
    }
    assert listed == set(SIZED_CONFIGS)


def test_ordinal_loss_respects_the_order_and_units_are_parameter_units() -> None:
    head = {**DEFAULT_SPEC["heads"][1], "kind": "ordinal"}
    labels = torch.tensor([128])  # velocity 84: class 44
    near, far = torch.full((1, 88), -9.0), torch.full((1, 88), -9.0)
    near[0, 45], far[0, 80] = 9.0, 9.0
    assert head_loss(head, near, labels, 0.0) < head_loss(head, far, labels, 0.0)
    assert float(predicted_values(head, near)) == 85.0
    regression = {**head, "kind": "regression"}
    assert float(predicted_values(regression, torch.tensor([[0.5]]))) == 83.5


def test_metrics_per_head_and_the_score() -> None:
    heads = [
        {**DEFAULT_SPEC["heads"][0]},
        {**DEFAULT_SPEC["heads"][1], "kind": "regression"},
    ]
    metric = HeadMetrics(heads)
    labels = torch.tensor([[0, 0], [255, 255]])  # notes 40 and 88, velocities 40 and 127
    logits = torch.zeros(2, 49)
    logits[0, 0] = logits[1, 0] = 1.0  # right once
    values = torch.tensor([[0.0], [0.5]])  # velocity 40 (right), 83.5 (43.5 off)
    metric.update({"note_number": logits, "note_velocity": values}, labels)
    result = metric.compute()
    assert set(result) == {"note_number/acc", "note_velocity/mae", "score"}
    assert float(result["note_number/acc"]) == 0.5
    assert float(result["note_velocity/mae"]) == pytest.approx(21.75)
    assert float(result["score"]) == pytest.approx((0.5 + 1 - 21.75 / 87) / 2)


class ShuffledHeadDataModule(VIMHDataModule):
    """VIMH data whose training labels of one head are shuffled: that head cannot learn."""

    def __init__(self, shuffled_head: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shuffled_head = shuffled_head

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        super().setup(stage)
        x, y, levels = self.splits["train"]
        column = [h["name"] for h in self.spec["heads"]].index(self.shuffled_head)
        y = y.clone()
        y[:, column] = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0)), column]
        self.splits["train"] = (x, y, levels)


def failing_heads(metrics: dict[str, Any], dm: VIMHDataModule, mae_ratio: float) -> list[str]:
    """Heads that do not beat their baseline on the test split: the majority class by at
    least 0.25 accuracy, or the training mean's MAE by the factor ``mae_ratio``."""
    _, train_y, _ = dm.splits["train"]
    _, test_y, _ = dm.splits["test"]
    failing = []
    for i, head in enumerate(dm.spec["heads"]):
        name = head["name"]
        if head["kind"] == "regression":
            baseline = label_values(test_y[:, i], head) - label_values(train_y[:, i], head).mean()
            baseline = float(baseline.abs().mean())
            got = float(metrics[f"test/{name}/mae"])
            ok = got < mae_ratio * baseline
        else:
            majority = label_classes(train_y[:, i], head).mode().values
            baseline = float((label_classes(test_y[:, i], head) == majority).float().mean())
            got = float(metrics[f"test/{name}/acc"])
            ok = got >= baseline + 0.25
        print(f"{name} ({head['kind']}): test {got:.4f}, baseline {baseline:.4f}")
        if not ok:
            failing.append(name)
    return failing


def run_vimh(tmp_path: Path, data_parent: Path, size: int, *overrides: str) -> tuple[dict, Any]:
    cfg = compose_config(
        "train.yaml",
        ["experiment=vimh_cnn", *vimh_overrides(data_parent, size), *overrides],
        tmp_path,
    )
    metrics, objects = train(cfg)
    return metrics, objects["datamodule"]


FAST = ("trainer.max_epochs=8", "data.batch_size=32")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vimh_1000")


@pytest.fixture(scope="module")
def full_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vimh_2000")


def test_vimh_cnn_learns_every_head_quickly(tmp_path: Path, small_data: Path) -> None:
    """1,000 notes, 8 epochs: pitch well above the majority class, velocity (regression)
    at under half the mean predictor's error; checkpoints load as plain tensors."""
    metrics, dm = run_vimh(
        tmp_path, small_data, 1000, *FAST, "callbacks=[default,confusion_matrix]"
    )
    assert failing_heads(metrics, dm, mae_ratio=0.5) == []
    best = torch.load(next((tmp_path / "checkpoints").glob("epoch_*.ckpt")), weights_only=True)
    assert float(best["state_dict"]["val_best.max_value"]) == pytest.approx(
        float(metrics["val/score_best"])
    )
    figures = sorted(p.name for p in (tmp_path / "figures").glob("confusion_matrix_test*"))
    assert figures == ["confusion_matrix_test_note_number.png"]  # none for a regression head


def test_a_head_with_shuffled_labels_fails_the_check(tmp_path: Path, small_data: Path) -> None:
    metrics, dm = run_vimh(
        tmp_path,
        small_data,
        1000,
        *FAST,
        f"data._target_={__name__}.ShuffledHeadDataModule",
        "+data.shuffled_head=note_number",
    )
    assert failing_heads(metrics, dm, mae_ratio=0.5) == ["note_number"]


@pytest.mark.slow
@pytest.mark.parametrize("broken", [None, "note_velocity"])
def test_vimh_cnn_learns_every_head(broken: str | None, tmp_path: Path, full_data: Path) -> None:
    """The full check on 2,000 notes with the experiment's own settings: pitch 0.25 above
    the majority class, velocity at under a quarter of the mean predictor's error; with
    the velocity labels shuffled, velocity alone fails."""
    shuffle = (
        [f"data._target_={__name__}.ShuffledHeadDataModule", f"+data.shuffled_head={broken}"]
        if broken
        else []
    )
    metrics, dm = run_vimh(tmp_path, full_data, 2000, *shuffle)
    assert failing_heads(metrics, dm, mae_ratio=0.25) == ([broken] if broken else [])
