"""A VIMH data set's settings, checked, and what follows from them: the plan.

The settings are a plain mapping (``configs/generate_vimh.yaml`` composes it;
``data=vimh`` with ``generate: true`` holds the same keys): ``synth`` (a preset
from configs/synth/, its spectrogram from configs/stft/), ``size``, ``seed``,
``test_fraction`` and, where not at its usual value, ``sampling``
(``src.vimh.sampling``). ``make_plan`` checks them and derives the data set's
directory name and settings hash; ``src.vimh.generator`` renders the plan.

The directory name carries every setting that changes the bytes. NSMT's scheme
(``format.dataset_name``) states the image shape, sample rate, duration, size,
preset name and label count; the rest is appended where it is not at the value
NSMT's names stand for (``name_extras``): ``_seed1`` (seed 0 is not named),
``_test0p3`` (test_fraction 0.2 is not), ``_grid`` (random sampling is not) and
``_synth-<hash>`` where the preset differs from ``configs/synth/<name>.yaml``
(another spectrogram, other parameter ranges; the hash is of the preset less
what the name states). So the default settings keep NSMT's names, and two
generations that differ in anything else land in two directories.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.utils.errors import UserInputError
from src.vimh.format import FORMAT_VERSION, dataset_name, decimal
from src.vimh.sampling import check_sampling
from src.vimh.spectrograms import Spectrogram, without_usual_options
from src.vimh.synths import Synthesizer

# part of the settings hash: bump it when a change to the synthesis changes the bytes
GENERATOR_VERSION = 1
RANGE_KEYS = {"min", "max", "step"}
SETTING_KEYS = ("synth", "size", "seed", "test_fraction")
# settings that came later, with the value that means "as before": left out of the settings
# (and so of the hash) at that value, so data sets made before they existed stay valid
OPTIONAL_SETTINGS = {"sampling": "random"}
# settings NSMT's directory names leave out, at the values those names stand for: another
# value is appended to the name (``name_extras``); sampling is named when it is in the settings
UNNAMED_DEFAULTS = {"seed": 0, "test_fraction": 0.2}
# the preset's keys that NSMT's scheme names itself
NAMED_PRESET_KEYS = ("name", "height", "width", "sample_rate", "duration")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESET_KEYS = {
    "name",
    "synthesizer",
    "sample_rate",
    "duration",
    "height",
    "width",
    "spectrogram",
    "parameters",
}


def settings_from(node: Any) -> dict[str, Any]:
    """The generation settings (plain data) from a config node that holds them."""
    from omegaconf import OmegaConf

    missing = [key for key in SETTING_KEYS if key not in node]
    if missing:
        raise UserInputError(f"The VIMH generation settings lack {missing}.")
    values = {key: node[key] for key in SETTING_KEYS}
    values |= {k: node[k] for k, usual in OPTIONAL_SETTINGS.items() if node.get(k, usual) != usual}
    settings = {
        key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for key, v in values.items()
    }
    settings["synth"] = in_shipped_form(preset_settings(settings["synth"]))
    return settings


def in_shipped_form(preset: Any) -> Any:
    """``preset`` with every number that equals the shipped preset's at the same place
    written as the shipped one is (``note_number.max=88.0`` -> ``88``), so that an
    override to the shipped value names and hashes the shipped data set, not a
    ``_synth-`` copy of it. Other values stay as given: the hashes of data sets made
    before stay valid."""
    if not isinstance(preset, dict):
        return preset
    shipped = shipped_preset(str(preset.get("name")))
    return preset if shipped is None else _numbers_like(preset, json.loads(shipped))


def _numbers_like(value: Any, shipped: Any) -> Any:
    if isinstance(value, dict) and isinstance(shipped, dict):
        return {k: _numbers_like(v, shipped[k]) if k in shipped else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(shipped, list) and len(value) == len(shipped):
        return [_numbers_like(v, s) for v, s in zip(value, shipped, strict=True)]
    numbers = (int, float)  # by type: a bool is no number here
    if type(value) in numbers and type(shipped) in numbers and value == shipped:
        return shipped
    return value


def preset_settings(preset: Any) -> Any:
    """A synth preset (plain data) as the settings hold it: the spectrogram less the
    options at their usual values (``without_usual_options``)."""
    spectrogram = preset.get("spectrogram") if isinstance(preset, dict) else None
    if isinstance(spectrogram, dict):
        preset = {**preset, "spectrogram": without_usual_options(spectrogram)}
    return preset


@functools.cache
def shipped_preset(name: str) -> str | None:
    """``configs/synth/<name>.yaml`` as composed, in the settings' form (JSON: cached,
    so it cannot be changed through the cache), or None where no preset has that name.
    Inside a Hydra app it is looked up in the app's config search path."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException
    from omegaconf import OmegaConf

    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return None
    try:
        if GlobalHydra.instance().is_initialized():
            cfg = compose(config_name=f"synth/{name}")
        else:
            with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
                cfg = compose(config_name=f"synth/{name}")
    except MissingConfigException:
        return None
    preset = preset_settings(OmegaConf.to_container(cfg.synth, resolve=True))
    return json.dumps(preset, sort_keys=True)


def name_extras(settings: dict[str, Any]) -> tuple[str, ...]:
    """What the directory name adds to NSMT's scheme: each setting that changes the bytes,
    is not in that scheme and is not at the value NSMT's names stand for (module
    docstring)."""
    extras = []
    if settings["seed"] != UNNAMED_DEFAULTS["seed"]:
        extras.append(f"seed{settings['seed']}")
    if settings["test_fraction"] != UNNAMED_DEFAULTS["test_fraction"]:
        extras.append(f"test{decimal(settings['test_fraction'])}")
    if "sampling" in settings:  # only there when not "random" (OPTIONAL_SETTINGS)
        extras.append(str(settings["sampling"]))
    preset = settings["synth"]
    unnamed = {key: v for key, v in preset.items() if key not in NAMED_PRESET_KEYS}
    shipped = shipped_preset(str(preset["name"]))
    if shipped is None or unnamed != {
        key: v for key, v in json.loads(shipped).items() if key not in NAMED_PRESET_KEYS
    }:
        digest = hashlib.sha256(json.dumps(unnamed, sort_keys=True).encode()).hexdigest()
        extras.append(f"synth-{digest[:8]}")
    return tuple(extras)


@dataclass(frozen=True)
class Plan:
    """Checked settings and what follows from them."""

    settings: dict[str, Any]
    name: str
    settings_hash: str
    synthesizer: Synthesizer
    spectrogram: Spectrogram
    varying: dict[str, dict[str, float]]
    fixed: dict[str, float]

    @property
    def preset(self) -> dict[str, Any]:
        return self.settings["synth"]

    @property
    def num_samples(self) -> int:
        """Audio samples per note."""
        return round(self.preset["sample_rate"] * self.preset["duration"])


def _load_synthesizer(path: str) -> Synthesizer:
    from hydra.utils import get_class

    try:
        synthesizer = get_class(path)()
    except (ImportError, ValueError) as error:
        raise UserInputError(f"synth.synthesizer={path} cannot be imported ({error}).") from error
    if not isinstance(synthesizer, Synthesizer):
        raise UserInputError(f"synth.synthesizer={path} has no `parameters` and `render`.")
    return synthesizer


def _parameter_ranges(
    preset: dict[str, Any], synthesizer: Synthesizer
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Split the preset's parameters into varying ranges and fixed values, checking each."""
    where = f"synth preset {preset['name']}"
    declared = preset["parameters"]
    unknown = sorted(set(declared) - set(synthesizer.parameters))
    missing = sorted(set(synthesizer.parameters) - set(declared))
    if unknown or missing:
        raise UserInputError(
            f"{where}: parameters {unknown} are unknown and {missing} are missing; "
            f"declare each of {sorted(synthesizer.parameters)} once, as a value or a range."
        )
    varying, fixed = {}, {}
    for name, value in declared.items():
        if not isinstance(value, dict):
            fixed[name] = float(value)
            continue
        if not {"min", "max"} <= set(value) <= RANGE_KEYS or not value["min"] < value["max"]:
            raise UserInputError(
                f"{where}: {name} must be a number (fixed) or {{min, max[, step]}} with "
                f"min < max (varying), got {value}."
            )
        step = value.get("step")
        if step is not None:
            steps = (value["max"] - value["min"]) / step
            if step <= 0 or abs(steps - round(steps)) > 1e-6 or steps > 255:
                raise UserInputError(
                    f"{where}: {name} step {step} must divide max - min into at most 255 "
                    f"equal steps, got {steps:g}."
                )
        varying[name] = {key: float(v) for key, v in value.items() if v is not None}
    if not varying:
        raise UserInputError(f"{where} varies no parameter: a data set needs at least one label.")
    return varying, fixed


def make_plan(settings: dict[str, Any]) -> Plan:
    """Check the settings and derive the directory name and settings hash."""
    preset = settings["synth"]
    if set(preset) != PRESET_KEYS:
        raise UserInputError(
            f"The synth preset needs exactly the keys {sorted(PRESET_KEYS)}; it lacks "
            f"{sorted(PRESET_KEYS - set(preset))} and has unknown {sorted(set(preset) - PRESET_KEYS)}."
        )
    synthesizer = _load_synthesizer(preset["synthesizer"])
    varying, fixed = _parameter_ranges(preset, synthesizer)
    spectrogram = Spectrogram.from_settings(
        preset["spectrogram"], f"synth preset {preset['name']} spectrogram"
    )
    spectrogram.check_height(preset["height"], preset["sample_rate"])
    spectrogram.hop_length(round(preset["sample_rate"] * preset["duration"]), preset["width"])
    for key, kinds, what in (
        ("size", (int,), "a whole number"),
        ("seed", (int,), "a whole number"),
        ("test_fraction", (int, float), "a number between 0 and 1"),
    ):
        if type(settings[key]) not in kinds:  # by type: a bool is no number here
            raise UserInputError(f"{key}={settings[key]!r}: give {what}.")
    if settings["seed"] < 0:
        raise UserInputError(f"seed={settings['seed']}: give a whole number >= 0.")
    if settings["size"] < 2 or not 0 < settings["test_fraction"] < 1:
        raise UserInputError(
            f"size={settings['size']} and test_fraction={settings['test_fraction']} must leave "
            "at least one sample in train and one in test."
        )
    check_sampling(settings.get("sampling", "random"), varying, settings["size"])
    stamped = {"generator_version": GENERATOR_VERSION, "format_version": FORMAT_VERSION}
    encoded = json.dumps({**stamped, **settings}, sort_keys=True).encode()
    name = dataset_name(
        preset["height"],
        preset["width"],
        spectrogram.channels,
        preset["sample_rate"],
        preset["duration"],
        settings["size"],
        preset["name"],
        len(varying),
        name_extras(settings),
    )
    return Plan(
        settings=settings,
        name=name,
        settings_hash=hashlib.sha256(encoded).hexdigest()[:12],
        synthesizer=synthesizer,
        spectrogram=spectrogram,
        varying=varying,
        fixed=fixed,
    )
