"""CountAccuracy: the accuracy a classification run logs, against torchmetrics' own."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

from src.models.components.count_accuracy import CountAccuracy


def test_equals_torchmetrics_micro_accuracy_over_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    ours, theirs = CountAccuracy(), MulticlassAccuracy(7, average="micro")
    for size in (128, 128, 37):  # a short last batch: samples, not batches, are averaged
        predicted = torch.randint(0, 7, (size,), generator=generator)
        target = torch.where(torch.rand(size, generator=generator) < 0.6, predicted, 0)
        ours.update(predicted, target)
        theirs.update(predicted, target)
    assert torch.allclose(ours.compute(), theirs.compute())
    assert 0.6 < float(ours.compute()) < 1.0


def test_states_sum_across_processes_and_survive_a_state_dict() -> None:
    first, second = CountAccuracy(), CountAccuracy()
    first.update(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0]))  # 2 of 3
    second.update(torch.tensor([4]), torch.tensor([0]))  # 0 of 1
    first.merge_state(second)  # what DDP's sum reduction does with the two processes' states
    assert float(first.compute()) == 0.5
    first.persistent(True)
    restored = CountAccuracy()
    restored.persistent(True)
    restored.load_state_dict(first.state_dict())
    assert float(restored.compute()) == 0.5


def test_updates_after_a_compute_count_and_clones_update_on_their_own(recwarn) -> None:
    """Its own update wrapper keeps torchmetrics' bookkeeping: a compute after more
    updates is not the cached one, updates are counted, a clone (re-wrapped) is separate."""
    accuracy = CountAccuracy()
    accuracy.update(torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert float(accuracy.compute()) == 1.0
    accuracy.update(torch.tensor([3, 4]), torch.tensor([0, 0]))
    assert float(accuracy.compute()) == 0.5 and accuracy._update_count == 2
    copy = accuracy.clone()
    copy.update(torch.tensor([5]), torch.tensor([5]))
    assert (float(copy.compute()), float(accuracy.compute())) == (pytest.approx(0.6), 0.5)
    accuracy.reset()
    accuracy.update(torch.tensor([1]), torch.tensor([0]))
    assert float(accuracy.compute()) == 0.0
    assert not [w for w in recwarn if "before the ``update``" in str(w.message)]
