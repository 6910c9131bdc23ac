"""VIMH data sets: spectrogram images with one label per varying synthesizer parameter.

Splits: the data set's ``test`` file is the test split; its ``train`` file is
cut into train and val (``val_fraction``, seeded by ``split_seed``), so the
test split never takes part in model selection. With ``num_folds`` the train
file is the pool dealt into folds (``InMemoryDataModule``). These folds are
not stratified: a sample has one label per parameter, and keeping the
proportions of every parameter's values, or of their combinations, in every
fold is not possible in general, so the folds are plainly shuffled (with a
few thousand samples each fold still sees every region of the parameter
space).

A batch is the tuple ``(x, y, levels)``:

- ``x``: float32 (N, C, H, W), the image bytes standardised with the training
  split's mean and std (one number each, as in every in-memory data module);
- ``y``: int64 (N, P), the label bytes 0..255 of the P varying parameters in
  ``param_id`` order; ``spec["heads"][i]`` describes column i, and
  ``components.vimh_heads.label_classes`` / ``label_values`` turn a column
  into class indices or parameter values;
- ``levels``: float32 (N, 2), each image's ``spec_min_db`` and
  ``spec_max_db``, standardised per column with the training split's
  statistics. Each image is normalised on its own when it is written, which
  removes its loudness from ``x``; ``levels`` gives it back, so that
  loudness-type parameters (velocity) can be learnt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from src.data.components.memmap_loader import MemmapMode
from src.data.components.splits import Split
from src.data.in_memory_datamodule import InMemoryDataModule
from src.models.components.head_kinds import class_names
from src.utils.errors import UserInputError
from src.vimh.format import INFO_FILE, Records, read_dataset, read_info
from src.vimh.generator import generate_vimh
from src.vimh.heads import head_specs
from src.vimh.memmap_records import memmap_datasets
from src.vimh.plan import make_plan, settings_from

# level spreads under this (dB) are rounding, not information worth amplifying
MIN_LEVEL_STD = 0.1


def as_tensors(records: Records) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images uint8, labels int64, levels float32) tensors sharing the arrays' memory."""
    return (
        torch.from_numpy(records.images),
        torch.from_numpy(records.labels).long(),
        torch.from_numpy(records.levels),
    )


class VIMHDataModule(MemmapMode, InMemoryDataModule):
    """A VIMH data set directory, held in memory; see the module docstring for batches.

    Args:
        data_dir: the data set's directory (``vimh-...``).
        batch_size: samples per batch (per process under DDP).
        val_fraction: share of the train file held out as the val split.
        head_kind: kind of every head (``classification``, ``ordinal``, ``regression``).
        head_kinds: parameter name -> kind, for heads of another kind.
        label_decoding: how label bytes become classes and values: ``midpoint`` (the
            middle of each byte's interval, the more accurate) or ``nsmt`` (NSMT's reader's
            rule, for exact comparability; docs/vimh_format.md).
        generate: make ``data_dir`` from ``generation`` if it is missing (with the
            same settings an existing one is used; other settings are an error).
        generation: the generator's settings (``synth``, ``size``, ``seed``,
            ``test_fraction``), as in ``configs/generate_vimh.yaml``.
        in_memory: hold the data set in memory (the speed path); ``False``: read the
            record files in place, batch by batch (``memmap_records``: data sets larger
            than memory; the same splits, normalisation and batches).
        shared: split_seed (seed of the train/val cut), shuffle_seed, drop_last,
            num_folds and fold (k-fold cross-validation over the train file instead
            of the ``val_fraction`` cut), num_workers, pin_memory,
            persistent_workers: see ``InMemoryDataModule``.
    """

    image_origin = "lower"  # row 0 is the lowest frequency: figures draw it at the bottom

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        head_kind: str = "classification",
        head_kinds: dict[str, str] | None = None,
        label_decoding: str = "midpoint",
        generate: bool = False,
        generation: dict[str, Any] | None = None,
        in_memory: bool = True,
        **shared: Any,
    ) -> None:
        super().__init__(data_dir, (0, 0, 0), batch_size, **shared)
        if not 0 < val_fraction < 1:
            raise UserInputError(f"data.val_fraction must be in (0, 1), got {val_fraction}.")
        if generate and generation is None:
            raise UserInputError("data.generate=true needs the settings in data.generation.")
        self.val_fraction = val_fraction
        self.head_kind = head_kind
        self.head_kinds = dict(head_kinds or {})
        self.label_decoding = label_decoding
        self.generate = generate
        self.generation = generation
        self.in_memory = in_memory
        self.datasets: dict[str, Any] = {}  # the memmap splits (in_memory=False)
        self._info: dict[str, Any] | None = None

    def memmap_splits(self) -> tuple[dict[str, Any], Any, Any]:
        return memmap_datasets(self)

    @property
    def source(self) -> str:
        return f"the VIMH data set {self.data_dir}"

    def prepare_data(self) -> None:
        self.dataset_info()

    def dataset_info(self) -> dict[str, Any]:
        """The data set's JSON, once the data set is there (see ``find_or_generate``)."""
        if self._info is None:
            self.find_or_generate()
            self._info = read_info(self.data_dir)
        return self._info

    def find_or_generate(self) -> None:
        """Generate the data set if asked to; otherwise say how to make a missing one."""
        path = Path(self.data_dir)
        if self.generate:
            settings = settings_from(self.generation)
            name = make_plan(settings).name
            if path.name != name:
                raise UserInputError(
                    f"data.data_dir={path} does not match data.generation, which makes "
                    f"{name}. Set data.data_dir={path.parent / name} or change data.generation."
                )
            generate_vimh(settings, path.parent)
        elif not (path / INFO_FILE).is_file():
            raise UserInputError(
                f"VIMH data set {path} not found (no {INFO_FILE}). Create it with "
                "`make data-vimh` (or another data-* target), generate it on the fly with "
                "data.generate=true, or point data.data_dir at an existing data set."
            )

    @property
    def spec(self) -> dict[str, Any]:
        info = self.dataset_info()
        return {
            "input_shape": [info["channels"], info["height"], info["width"]],
            "heads": head_specs(info, self.head_kind, self.head_kinds, self.label_decoding),
        }

    def class_names(self, head: str = "") -> list[str] | None:
        """The parameter value each class of ``head`` stands for (``class_names`` of its
        spec: the MIDI notes 40..88 of a note_number head, a byte's value, rounded, of a
        continuous one); None for a name that is not a head of this data set."""
        for spec in self.spec["heads"]:
            if spec["name"] == head:
                return class_names(spec)
        return None

    def split_train(self, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions in the train file of the train and val samples, cut at random
        (seeded by ``split_seed``)."""
        num_val = round(total * self.val_fraction)
        if not 0 < num_val < total:
            raise UserInputError(
                f"data.val_fraction={self.val_fraction} of the {total} samples in "
                f"{self.data_dir}/train leaves {num_val} for val and {total - num_val} for "
                "train; each needs at least one."
            )
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(total, generator=generator)
        return order[num_val:], order[:num_val]

    def load_splits(self) -> Split:
        """The train file cut into train and val, the test file as test; the indices
        count the train file's samples, then the test file's."""
        self.dataset_info()  # generates or names a missing data set first
        _, files = read_dataset(self.data_dir)
        pool, test = as_tensors(files["train"]), as_tensors(files["test"])
        size, tested = len(pool[0]), len(test[0])
        kept, val = self.split_train(size)
        return Split(
            {
                "train": tuple(t[kept] for t in pool),
                "val": tuple(t[val] for t in pool),
                "test": test,
            },
            {"train": kept, "val": val, "test": torch.arange(size, size + tested)},
            f"the {size} samples of {self.data_dir}/train, then the {tested} of "
            f"{self.data_dir}/test, in file order",
        )

    def fit_normalisation(self, x: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> None:
        super().fit_normalisation(x, y)
        self.level_mean, self.level_std = levels.mean(0), levels.std(0).clamp_min(MIN_LEVEL_STD)

    def normalise(
        self, x: torch.Tensor, y: torch.Tensor, levels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = ((levels - self.level_mean) / self.level_std).contiguous()
        return (*super().normalise(x, y), levels)
