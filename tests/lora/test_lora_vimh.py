"""LoRA across VIMH data sets with other parameters: a CNN trained on simple_saw (pitch,
velocity) adapted to moog_resonance (filter cutoff and resonance) with new heads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from src.lora.net import LoRANet, resolve_modules
from src.lora.runs import LoRARun
from src.models.components.head_specs import label_values
from src.utils.checkpoints import best_checkpoint, read_checkpoint
from src.utils.errors import UserInputError
from src.vimh.plan import make_plan, settings_from
from tests.conftest import compose_config, train_run, vimh_overrides

MODEL = "model=vimh_cnn_16k"
FAST = ("data.batch_size=32",)
MOOG = "vimh-32x32x1_8000Hz_1p0s_{}dss_moog_resonance_2p"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def base_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small CNN trained briefly on simple_saw notes (heads note_number, note_velocity)."""
    run_dir = tmp_path_factory.mktemp("base")
    overrides = ["experiment=vimh_cnn", MODEL, *vimh_overrides(data_dir, 600), *FAST]
    metrics, _ = train_run(run_dir, *overrides, "trainer.max_epochs=10")
    assert metrics["test/note_number/acc"] > 0.2  # pitch learnt (chance: 1/49)
    return run_dir


def moog_overrides(data_dir: Path, base_dir: Path, size: int = 600) -> list[str]:
    return [
        "experiment=lora_vimh",
        MODEL,
        f"model.lora.base_ckpt={base_dir}",
        f"paths.data_dir={data_dir}",
        f"data.generation.size={size}",
        f"data.data_dir={data_dir / MOOG.format(size)}",
    ]


@pytest.fixture(scope="module")
def moog_run(data_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("lora_moog")
    overrides = moog_overrides(data_dir, base_dir)
    return (run_dir, *train_run(run_dir, *overrides, *FAST, "trainer.max_epochs=12"))


def mean_baseline_mae(datamodule: Any, head: dict[str, Any], column: int) -> float:
    """MAE (parameter units) of always predicting the training split's mean."""
    train = label_values(datamodule.splits["train"][1][:, column], head)
    test = label_values(datamodule.splits["test"][1][:, column], head)
    return float((test - train.mean()).abs().mean())


@pytest.mark.slow
def test_new_heads_learn_filter_parameters_on_the_adapted_trunk(base_dir, moog_run) -> None:
    run_dir, metrics, objects = moog_run
    module, datamodule = objects["model"], objects["datamodule"]
    heads = {h["name"]: h for h in module.heads}
    assert list(heads) == ["filter_cutoff", "filter_resonance"]
    for column, name in enumerate(heads):
        mae, baseline = (
            metrics[f"test/{name}/mae"],
            mean_baseline_mae(datamodule, heads[name], column),
        )
        print(
            f"LoRA simple_saw -> moog_resonance: test/{name}/mae={mae:.4g} (mean: {baseline:.4g})"
        )
        assert mae < 0.4 * baseline, name  # measured: 0.13 (cutoff), 0.16 (resonance)
    # only the adapters and the new heads reach the optimizer
    optimizer = module.configure_optimizers()["optimizer"]
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = [n for n, p in module.named_parameters() if id(p) in optimized]
    assert any("heads.outputs.filter_cutoff.modules_to_save" in n for n in names)
    assert any("features.0.lora_A" in n for n in names)
    assert names and all("lora_" in n or "modules_to_save" in n for n in names)
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert trainable < 0.5 * sum(p.numel() for p in module.parameters())
    # the trunk stayed the base's: weights and BatchNorm statistics
    base = read_checkpoint(best_checkpoint(base_dir))["state_dict"]
    tuned = read_checkpoint(best_checkpoint(run_dir))["state_dict"]
    prefix = "net.model.base_model.model."
    for name in ("features.1.running_mean", "features.5.running_var"):
        assert torch.equal(tuned[prefix + name], base[f"net.{name}"]), name
    assert torch.equal(
        tuned[prefix + "heads.hidden.0.base_layer.weight"], base["net.heads.hidden.0.weight"]
    )


@pytest.mark.slow
def test_adapter_of_the_new_heads_rebuilds_the_run(moog_run) -> None:
    run_dir, _, objects = moog_run
    module, datamodule = objects["model"].eval(), objects["datamodule"]
    rebuilt = LoRARun.read(run_dir).adapted_module(datamodule)
    x, _, levels = datamodule.splits["test"]
    with torch.no_grad():
        expected, got = module(x, levels), rebuilt(x, levels)
    assert expected.keys() == got.keys() == {"filter_cutoff", "filter_resonance"}
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def spectral_cnn(heads: list[tuple[str, str, int]]) -> torch.nn.Module:
    from src.vimh.spectral_cnn import SpectralCNN

    specs = [
        {"name": n, "kind": k, "num_classes": c, "min": 0.0, "max": 1.0, "step": None}
        for n, k, c in heads
    ]
    return SpectralCNN((1, 32, 32), specs, channels=(4, 8), hidden_size=16)


SAW = [("note_number", "classification", 49), ("note_velocity", "regression", 256)]
MOOG_HEADS = [("filter_cutoff", "regression", 256), ("filter_resonance", "regression", 256)]


def test_new_heads_replace_the_bases_whatever_their_names(tmp_path: Path) -> None:
    """Fast: a base saved from a simple_saw-shaped net, adapted to moog_resonance's heads
    (and to stk_pluck's single note_number head of another size)."""
    torch.manual_seed(0)
    base_net = spectral_cnn(SAW)
    torch.save(base_net.state_dict(), tmp_path / "base.pt")
    net = spectral_cnn(MOOG_HEADS)
    assert resolve_modules(net, ["heads.outputs"]) == [
        "heads.outputs.filter_cutoff",
        "heads.outputs.filter_resonance",
    ]
    # without new heads the base's note_number head does not fit: one message, with the fix
    with pytest.raises(UserInputError, match=r"note_number.*\[heads.outputs\] for the VIMH"):
        LoRANet(spectral_cnn(MOOG_HEADS), str(tmp_path / "base.pt"), r=2)
    lora = LoRANet(net, str(tmp_path / "base.pt"), r=2, modules_to_save=["heads.outputs"])
    x, levels = torch.randn(3, 1, 32, 32), torch.randn(3, 2)
    outputs = lora(x, levels)  # was peft's TypeError for the ModuleDict
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "filter_cutoff": (3, 1),
        "filter_resonance": (3, 1),
    }
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any(".heads.outputs.filter_resonance.modules_to_save" in n for n in trainable)
    tuned = lora.model.base_model.model
    assert torch.equal(tuned.features[0].base_layer.weight, base_net.features[0].weight)
    assert torch.equal(tuned.features[1].running_var, base_net.features[1].running_var)
    # a head of the same name but another size (stk_pluck's 25 pitches) is new too
    pluck = LoRANet(
        spectral_cnn([("note_number", "classification", 25)]),
        str(tmp_path / "base.pt"),
        r=2,
        modules_to_save=["heads.outputs"],
    )
    assert pluck(x, levels)["note_number"].shape == (3, 25)
    # naming one head of two keeps the other from the base (trained neither)
    one = LoRANet(
        spectral_cnn(SAW), str(tmp_path / "base.pt"), r=2, modules_to_save=["note_number"]
    )
    kept = one.model.base_model.model.heads.outputs.note_velocity
    assert torch.equal(kept.weight, base_net.heads.outputs.note_velocity.weight)


def saw_adapter(
    data_dir: Path, base_dir: Path, run_dir: Path, size: int, log10_decay_time: float, seed: int
) -> Path:
    """A plain LoRA on the base's own heads (+model/lora=default: every layer adapted, the
    1-output velocity regression head too) on a simple_saw set of ``size`` notes whose
    decay differs from the base's (1 s to fall by 60 dB): a shifted task the adapter has
    to learn, not the base's own data."""
    decay = f"data.generation.synth.parameters.log10_decay_time={log10_decay_time}"
    data = [*vimh_overrides(data_dir, size), decay]
    composed = compose_config("train.yaml", ["experiment=vimh_cnn", *data], run_dir)
    name = make_plan(settings_from(composed.data.generation)).name
    overrides = ["experiment=vimh_cnn", MODEL, *data, f"data.data_dir={data_dir / name}", *FAST]
    lora = ["+model/lora=default", f"model.lora.base_ckpt={base_dir}", f"seed={seed}"]
    train_run(run_dir, *overrides, *lora, "trainer.max_epochs=8")
    return run_dir


@pytest.mark.slow
def test_default_fuse_on_a_vimh_pair_gives_every_row(data_dir, base_dir, tmp_path, capsys):
    """`make fuse ADAPTERS=<a>,<b>` with fuse.yaml's default methods on two VIMH adapters
    whose layers include the 1-output velocity head: every method's row, svd included
    (peft's svd alone wrote a [1, 1] lora_B into the rank-8 adapter: "lora_B [1,1] vs
    [1,8]"), the base row, and the svd adapter is a run that eval reads back."""
    from src.eval import evaluate
    from src.lora.fuse import fuse_adapters

    runs = [
        saw_adapter(data_dir, base_dir, tmp_path / "a", 600, -0.8, 1),
        saw_adapter(data_dir, base_dir, tmp_path / "b", 400, 0.5, 2),
    ]
    cfg = compose_config("fuse.yaml", [f"adapters=[{runs[0]},{runs[1]}]"], tmp_path / "fused")
    results = fuse_adapters(cfg)
    printed = capsys.readouterr().out
    methods = ["linear", "ties", "ties_svd", "dare_linear", "dare_ties", "svd", "slerp"]
    assert list(results) == ["separate", "base", *methods]
    assert "test/score of each fused adapter on each source task's test split" in printed
    for row in ["base", *methods]:
        assert re.search(rf"^{row} +0\.\d{{4}} +0\.\d{{4}}", printed, re.M), row
    # each adapter learnt its data beyond the base it started from (scores in 0..1)
    assert all(results["separate"][t] > results["base"][t] for t in ("task1", "task2"))
    svd = tmp_path / "fused" / "svd" / "task1"
    adapter = load_file(svd / "adapter" / "adapter_model.safetensors")
    assert adapter["base_model.model.heads.outputs.note_velocity.lora_B.weight"].shape == (1, 8)
    evaluated, _ = evaluate(compose_config("eval.yaml", [f"run_dir={svd}"], tmp_path / "eval"))
    assert float(evaluated["test/score"]) == pytest.approx(results["svd"]["task1"], abs=1e-6)
