"""Head losses chosen by config (model.head_losses) and per-head weights (model.loss_weights):
what each loss rewards, that each learns a tiny problem, the config's messages, and a run
whose checkpoint holds the choice as plain data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from src.models.components.head_kinds import kind_of
from src.models.components.head_losses import HEAD_LOSSES, assign_losses, loss_of
from src.models.components.head_specs import label_values
from src.models.components.heads import OutputHeads
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config, vimh_overrides

VELOCITY = {"name": "note_velocity", "num_classes": 88, "min": 40.0, "max": 127.0, "step": 1.0}


def head(kind: str, loss: str | dict, **spec: float) -> dict:
    return assign_losses([{**VELOCITY, **spec, "kind": kind}], {"note_velocity": loss})[0]


def one_hot_logits(index: int, classes: int = 88) -> torch.Tensor:
    logits = torch.full((1, classes), -6.0)
    logits[0, index] = 6.0
    return logits


def test_soft_targets_reward_a_near_miss_that_cross_entropy_does_not() -> None:
    labels = torch.tensor([128])  # velocity 84: class 44
    near, far = one_hot_logits(45), one_hot_logits(80)
    soft, hard = head("classification", "soft_targets"), head("classification", "cross_entropy")
    assert loss_of(soft)(soft, near, labels) < loss_of(soft)(soft, far, labels) - 2
    assert loss_of(hard)(hard, near, labels) == pytest.approx(loss_of(hard)(hard, far, labels))
    smooth = head("classification", {"name": "label_smoothing", "smoothing": 0.2})
    right = one_hot_logits(44)
    # a confident right answer costs more under smoothing than under plain cross-entropy
    assert loss_of(smooth)(smooth, right, labels) > loss_of(hard)(hard, right, labels) + 1


def test_regression_losses_weigh_errors_as_their_names_say() -> None:
    labels = torch.tensor([0, 255])  # normalised targets 0 and 1
    small, large = torch.tensor([[0.05], [0.95]]), torch.tensor([[0.5], [0.5]])
    values = {}
    for name in ("l1", "mse", "huber"):
        spec = head("regression", name)
        values[name] = [float(loss_of(spec)(spec, out, labels)) for out in (small, large)]
    assert values["l1"] == pytest.approx([0.05, 0.5])
    assert values["mse"] == pytest.approx([0.0025, 0.25])
    # Huber's loss over delta = 0.1: quadratic within delta, then L1 less delta / 2
    assert values["huber"] == pytest.approx([0.5 * 0.05**2 / 0.1, 0.5 - 0.05])


def test_assigned_losses_are_plain_data_with_every_option() -> None:
    heads = [{**VELOCITY, "kind": "regression"}, {**VELOCITY, "name": "pitch", "kind": "ordinal"}]
    assigned = assign_losses(heads, {"regression": "huber", "pitch": "distance"}, ordinal_ce=0.3)
    assert [h["loss"] for h in assigned] == [
        {"name": "huber", "delta": 0.1},
        {"name": "distance", "ce_weight": 0.3},
    ]
    assert "loss" not in heads[0]  # the caller's specs are left alone
    assert assign_losses(assigned, None) == assigned  # a spec's own loss stays


@pytest.mark.parametrize(
    ("losses", "message"),
    [
        ({"pitch": "l1"}, "names ['pitch'], which are neither heads"),
        ({"note_velocity": "coral"}, "takes one of ['l1', 'mse', 'huber']"),
        ({"note_velocity": {"name": "huber", "width": 2}}, "takes the options ['delta']"),
        ({"note_velocity": {"name": "huber", "delta": "big"}}, "(numbers)"),
        ({"note_velocity": 3}, "has loss 3"),
    ],
)
def test_a_wrong_head_loss_is_one_clear_message(losses: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=re.escape(message)):
        assign_losses([{**VELOCITY, "kind": "regression"}], losses)


@pytest.mark.parametrize("name", sorted(HEAD_LOSSES))
def test_every_loss_learns_a_one_feature_problem(name: str) -> None:
    """A feature x in 0..1 whose parameter is x (velocity 40..127, 88 classes); each loss
    trains the output heads on it and predicts within 2.5 velocity steps on average
    (the mean predictor is 22 off)."""
    kind = HEAD_LOSSES[name].kind
    spec = {**VELOCITY, "kind": kind}
    torch.manual_seed(0)
    net = OutputHeads(1, 1, [spec], hidden_size=32, dropout=0.0, head_losses={kind: name})
    (spec,) = assign_losses([spec], {kind: name})
    x = torch.rand(1024)
    labels = (x * 255).floor().long()
    features, levels = x[:, None, None, None], torch.zeros(len(x), 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        loss_of(spec)(spec, net(features, levels)["note_velocity"], labels).backward()
        optimizer.step()
    with torch.no_grad():
        predicted = kind_of(spec).predicted_values(spec, net(features, levels)["note_velocity"])
    mae = float((predicted - label_values(labels, spec)).abs().mean())
    assert mae < 2.5, f"{name}: MAE {mae:.2f} velocity steps"


def test_coral_has_its_own_rank_consistent_layer() -> None:
    spec = {**VELOCITY, "kind": "ordinal"}
    net = OutputHeads(4, 2, [spec], hidden_size=8, head_losses={"ordinal": "coral"})
    layer = net.outputs["note_velocity"]
    assert not isinstance(layer, nn.Linear) and layer.score.weight.shape == (1, 8)
    logits = net(torch.randn(5, 4, 2, 3), torch.zeros(5, 2))["note_velocity"]
    assert logits.shape == (5, 87)
    # one score minus falling biases: P(class > k) never rises with k
    assert bool((logits.diff(dim=1) <= 1e-6).all())


@pytest.fixture(scope="module")
def saw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vimh_400")


def test_readme_overrides_train_and_the_checkpoint_holds_plain_data(
    tmp_path: Path, saw_data: Path
) -> None:
    """The README's model.loss_weights={note_velocity: 2} (was "not in struct") with
    head losses by kind and by head: the run trains, the net has CORAL's layer, and the
    best checkpoint loads with weights_only=True holding the choice."""
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=vimh_cnn",
            *vimh_overrides(saw_data, 400),
            "model=vimh_cnn_16k",
            "trainer.max_epochs=2",
            "data.head_kinds={note_velocity: ordinal}",
            "model.loss_weights={note_velocity: 2}",
            "model.head_losses={ordinal: coral, note_number: {name: soft_targets, width: 2}}",
        ],
        tmp_path,
    )
    metrics, objects = train(cfg)
    model = objects["model"]
    assert model.weights == [1.0, 2.0]
    assert [h["loss"] for h in model.heads] == [
        {"name": "soft_targets", "width": 2.0},
        {"name": "coral"},
    ]
    assert model.net.heads.outputs["note_velocity"].bias.shape == (87,)
    assert 0 < float(metrics["test/note_velocity/mae"]) < 87
    ckpt = torch.load(next((tmp_path / "checkpoints").glob("epoch_*.ckpt")), weights_only=True)
    assert ckpt["hyper_parameters"]["loss_weights"] == {"note_velocity": 2.0}
    assert ckpt["hyper_parameters"]["head_losses"] == {
        "ordinal": "coral",
        "note_number": {"name": "soft_targets", "width": 2},
    }


def test_compare_head_losses_takes_overrides_anywhere_on_the_line() -> None:
    """README's command puts a Hydra override after ``--seeds 1 2 3``: it is an override,
    not a fourth seed (argparse alone stopped at "invalid int value")."""
    from src.tools.compare_head_losses import parse

    line = "--size 2000 --epochs 20 --seeds 1 2 3 data.batch_size=32"
    args, overrides = parse(line.split())
    assert (args.size, args.epochs, args.seeds) == (2000, 20, [1, 2, 3])
    assert overrides == ["data.batch_size=32"]
    args, overrides = parse(["trainer.max_epochs=2", "--seeds", "4", "~callbacks.ema"])
    assert args.seeds == [4] and overrides == ["trainer.max_epochs=2", "~callbacks.ema"]


def test_compare_head_losses_prints_a_line_per_run_and_no_known_noise(
    tmp_path: Path, recwarn: pytest.WarningsRecorder, capsys: pytest.CaptureFixture
) -> None:
    """The tool runs train() itself: like src/train.py it silences the known-noise
    warnings first (300 notes make fewer batches than the logging interval, which
    Lightning warns about), prints no model summary per run, and says after each run
    which of how many it was and its velocity MAE."""
    from src.tools.compare_head_losses import compare

    compare(tmp_path, 300, 1, [1], [("regression", "l1")], [])
    assert not [w for w in recwarn if "logging interval" in str(w.message)]
    out = capsys.readouterr().out
    assert re.search(r"^\[1/1\] l1 \(regression velocity head\), seed 1: test velocity MAE "
                     r"\d+\.\d\d$", out, re.MULTILINE), out  # fmt: skip
    assert "Trainable params" not in out


@pytest.mark.slow
def test_compare_head_losses_tool_trains_each_variant(tmp_path: Path) -> None:
    """The comparison tool on 1,000 notes, 8 epochs, two of its variants: each learns
    velocity (the tool's test MAE, the run's own, under 0.6 of the mean predictor's) and
    pitch; the table names both, the mean predictor last. (At this budget a
    classification head is no better than the mean predictor: README.)"""
    from src.tools.compare_head_losses import compare, table

    variants = [("regression", "huber"), ("ordinal", "coral")]
    results = compare(tmp_path, 1000, 8, [1], variants, ["data.batch_size=32"])
    for variant, (metrics,) in results.items():
        # the tool's own MAE (every kind) is the run's test MAE where the head reports one
        reported = metrics.get("test/note_velocity/mae", metrics["velocity_mae"])
        assert metrics["velocity_mae"] == pytest.approx(reported, rel=1e-4), variant
        assert metrics["velocity_mae"] < 0.6 * metrics["mean_predictor_mae"], variant
        assert metrics["test/note_number/acc"] > 0.3, variant
    assert 18 < metrics["mean_predictor_mae"] < 26  # uniform velocities 40..127: about 21.75
    text = table(results)
    assert "| huber | regression |" in text and "| coral | ordinal |" in text
    assert text.splitlines()[-1].startswith("| (mean predictor) | - | ")


def test_a_new_key_in_a_mapping_an_experiment_fills_needs_a_plus(tmp_path: Path) -> None:
    """experiment=vimh_cnn fills data.head_kinds ({note_velocity: regression}): Hydra
    merges a typed mapping into it and refuses a new key (struct mode) with its own
    advice, `+`; the README's `+data.head_kinds={...}` and `+model.loss_weights={...}`
    merge the new keys in and keep the experiment's."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=re.escape("use +data.head_kinds=")):
        compose_config(
            "train.yaml",
            ["experiment=vimh_cnn", "data.head_kinds={note_number: ordinal}"],
            tmp_path,
        )
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=vimh_cnn",
            "+data.head_kinds={note_number: ordinal}",
            "model.loss_weights={note_velocity: 2}",  # null before: assigned as it is
            "+model.loss_weights={note_number: 3}",  # filled now: merged
        ],
        tmp_path,
    )
    assert cfg.data.head_kinds == {"note_velocity": "regression", "note_number": "ordinal"}
    assert cfg.model.loss_weights == {"note_velocity": 2, "note_number": 3}


def test_the_comparison_measures_a_classification_heads_velocity_error() -> None:
    """HeadMetrics reports no MAE for a classification head; the tool measures it from the
    predicted class's value, beside the mean predictor's (the training split's mean)."""
    from types import SimpleNamespace

    from src.tools.compare_head_losses import velocity_errors

    specs = [{**VELOCITY, "name": n, "kind": "classification"} for n in ("pitch", "note_velocity")]

    class AlwaysLowest(nn.Module):  # velocity class 0, the parameter's minimum: 40
        heads = assign_losses(specs, None)
        device = torch.device("cpu")

        def net_inputs(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor]:
            return (batch[0],)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"note_velocity": one_hot_logits(0).expand(len(x), 88)}

    train = torch.tensor([[0, 0], [0, 255]])  # velocities 40 and 127: mean 83.5
    test = torch.tensor([[0, 0], [0, 255], [0, 255]])
    loader = [[torch.zeros(2, 1), test[:2]], [torch.zeros(1, 1), test[2:]]]
    data = SimpleNamespace(data_train=SimpleNamespace(tensors=(None, train)))
    data.test_dataloader = lambda: loader
    errors = velocity_errors(AlwaysLowest(), data)
    assert errors["velocity_mae"] == pytest.approx((0 + 87 + 87) / 3)
    assert errors["mean_predictor_mae"] == pytest.approx(43.5)
