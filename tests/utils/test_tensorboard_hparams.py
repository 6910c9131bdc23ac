"""Which hyperparameters TensorBoard's HPARAMS table is told differ (it shows those first)."""

from __future__ import annotations

from src.utils.tensorboard_hparams import flat_hparams, overridden


def test_nested_hparams_flatten_to_slash_names_with_text_for_what_tensorboard_cannot_hold():
    flat = flat_hparams({"model": {"net": {"input_shape": [1, 8, 8], "size": 64}}, "ckpt": None})
    assert flat == {"model/net/input_shape": "[1, 8, 8]", "model/net/size": 64, "ckpt": "None"}


def test_overrides_mark_their_own_hyperparameters_and_a_group_choice_its_targets():
    names = [
        "model/optimizer/lr", "model/optimizer/_target_", "model/net/_target_",
        "model/net/size", "data/batch_size", "trainer/max_epochs",
    ]  # fmt: skip
    assert overridden(names, ["model.optimizer.lr=0.1", "++trainer.max_epochs=3"]) == {
        "model/optimizer/lr",
        "trainer/max_epochs",
    }
    assert overridden(names, ["model=cnn"]) == {"model/optimizer/_target_", "model/net/_target_"}
    assert overridden(names, ["seed=3", "data.num_workers=2"]) == set()  # not logged: nothing
