"""The VIMH generator: seeded bytes, no-op and clash rules, atomic writes, presets,
and synthesizer parameters that really change the spectrogram."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from src.utils.errors import UserInputError
from src.vimh import generator as vimh_generator
from src.vimh.format import INFO_FILE, read_dataset
from src.vimh.generate import generate
from src.vimh.generator import generate_vimh
from src.vimh.plan import Plan, make_plan, settings_from
from src.vimh.rendering import spectrogram_images
from tests.conftest import CONFIGS, run_cli

PRESETS = sorted(p.stem for p in (Path(CONFIGS) / "synth").glob("*.yaml"))


def generation_config(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("generate_vimh.yaml", overrides=list(overrides))


def settings(*overrides: str, preset: str = "simple_saw", size: int = 48) -> dict:
    return settings_from(generation_config(f"synth={preset}", f"size={size}", *overrides))


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory`` (hidden ones too) with its bytes and mtime."""
    return {
        str(p.relative_to(directory)): (
            p.read_bytes() if p.is_file() else b"",
            p.stat().st_mtime_ns,
        )
        for p in sorted(directory.rglob("*"))
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = generate_vimh(settings("seed=1"), tmp_path / "a")
    again = generate_vimh(settings("seed=1"), tmp_path / "b")
    other = generate_vimh(settings("seed=2"), tmp_path / "c")
    for name in ("train", "test", INFO_FILE):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert (first / "train").read_bytes() != (other / "train").read_bytes()
    info = json.loads((first / INFO_FILE).read_text())
    assert info["settings_hash"] != json.loads((other / INFO_FILE).read_text())["settings_hash"]
    assert (info["train_samples"], info["test_samples"]) == (38, 10)  # test_fraction 0.2


def test_the_data_set_is_as_readable_as_a_directory_the_user_makes(tmp_path: Path) -> None:
    """The staging directory (mkdtemp: 0700) becomes the data set: it gets the mode the
    umask gives a new directory, so colleagues sharing data/ can read it."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        made = generate_vimh(settings(), tmp_path)
        (tmp_path / "made_by_hand").mkdir()
    finally:
        os.umask(old)
    mode = stat.S_IMODE(made.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "made_by_hand").stat().st_mode) == 0o755


def test_regenerating_with_the_same_settings_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    made = generate_vimh(settings(), tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert generate_vimh(settings(), tmp_path) == made
    assert "exists with these settings" in capsys.readouterr().out
    assert snapshot(tmp_path) == before  # same files, bytes and mtimes, nothing beside them


def test_an_existing_data_set_is_reported_once_per_process(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Loading three runs of one data set (notebooks/vimh_worked_example.ipynb) finds it
    three times: the reader sees one line for it, and one for each other data set."""
    made = generate_vimh(settings(), tmp_path)
    other = generate_vimh(settings("seed=1"), tmp_path)
    capsys.readouterr()
    for _ in range(3):
        assert generate_vimh(settings(), tmp_path) == made
    assert generate_vimh(settings("seed=1"), tmp_path) == other
    out = capsys.readouterr().out
    assert out.count(f"VIMH data set {made} exists with these settings") == 1, out
    assert out.count(f"VIMH data set {other} exists with these settings") == 1, out


def as_if_made_with(directory: Path, **changes: object) -> None:
    """Rewrite a data set's JSON as if other settings had made it under this name (as the
    generator did before the name carried the seed: ``seed=1`` went to seed 0's name)."""
    info = json.loads((directory / INFO_FILE).read_text())
    info["generation_settings"].update(changes)
    info["settings_hash"] = "0" * 12
    (directory / INFO_FILE).write_text(json.dumps(info))


def test_other_settings_clash_unless_overwrite(tmp_path: Path) -> None:
    made = generate_vimh(settings(), tmp_path)
    as_if_made_with(made, seed=1)
    before = snapshot(tmp_path)
    with pytest.raises(UserInputError) as error:
        generate_vimh(settings(), tmp_path)
    message = str(error.value)
    assert str(made) in message and "seed: 1 -> 0" in message and "overwrite=true" in message
    assert snapshot(tmp_path) == before  # the existing data set is untouched
    (made / INFO_FILE).write_text("{broken")
    with pytest.raises(UserInputError, match="not valid JSON"):
        generate_vimh(settings(), tmp_path)
    assert generate_vimh(settings(), tmp_path, overwrite=True) == made
    assert json.loads((made / INFO_FILE).read_text())["generation_settings"]["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == [made.name]  # no leftovers


def test_every_setting_that_changes_the_bytes_names_its_own_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """NSMT's names leave out the seed, the test fraction and the preset's spectrogram and
    ranges: a second seed at an existing size was refused as a clash. Now each lands in its
    own directory, and the default settings keep NSMT's name."""
    default = generate_vimh(settings(), tmp_path)
    assert default.name == "vimh-32x32x1_8000Hz_1p0s_48dss_simple_saw_2p"  # NSMT's name
    seeded = generate_vimh(settings("seed=1"), tmp_path)
    assert seeded.name == f"{default.name}_seed1"
    for name in ("train", "test"):
        assert (seeded / name).read_bytes() != (default / name).read_bytes(), name
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert generate_vimh(settings("seed=1"), tmp_path) == seeded  # a repeat does nothing
    assert "exists with these settings" in capsys.readouterr().out
    assert snapshot(tmp_path) == before
    made = {"seed=0": default, "seed=1": seeded}
    for change, part in [
        ("test_fraction=0.25", "_test0p25"),
        ("stft@synth.spectrogram=hann256", "_synth-"),
        ("synth.parameters.note_number.max=76", "_synth-"),
        ("seed=1 stft@synth.spectrogram=hann256", "_seed1_synth-"),
    ]:
        made[change] = generate_vimh(settings(*change.split()), tmp_path)
        assert made[change].name.startswith(default.name + part), made[change].name
    assert len(set(made.values())) == len(made)  # every one its own directory
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in made.values())
    images = {c: read_dataset(p)[1]["train"].images for c, p in made.items()}
    assert not np.array_equal(images["stft@synth.spectrogram=hann256"], images["seed=0"])
    info = json.loads((made["test_fraction=0.25"] / INFO_FILE).read_text())
    assert info["test_samples"] == 12  # 48 * 0.25


def test_shipped_configs_name_the_directories_their_settings_make() -> None:
    """configs/data/vimh*.yaml and the VIMH experiments point data_dir at NSMT's names; the
    generator must make exactly those from their settings (the README names the first)."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    for choice in ["data=vimh", "data=vimh_16kdss", "data=vimh_stk", "experiment=moog_cnn",
                   "experiment=lora_vimh"]:  # fmt: skip
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
            data = compose("train.yaml", overrides=[choice]).data
        name = Path(data.data_dir).name
        assert make_plan(settings_from(data.generation)).name == name, choice
        if choice == "data=vimh":
            assert f"data/{name}" in readme
    # docs/vimh_format.md's example of a name with extras is what they make
    example = make_plan(settings("seed=1", "stft@synth.spectrogram=hann256", size=2000)).name
    assert example in (ROOT / "docs" / "vimh_format.md").read_text()


def test_an_interrupted_generation_leaves_no_data_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop_before_the_rename(staging: Path, *_: object) -> None:
        info, files = read_dataset(staging)  # the staging directory holds the whole data set
        assert (
            len(files["train"].images) + len(files["test"].images)
            == info["generation_settings"]["size"]
        )
        raise KeyboardInterrupt

    monkeypatch.setattr(vimh_generator, "_move_into_place", stop_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        generate_vimh(settings(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_entry_point_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = generation_config(
        "synth=moog_basic",
        "size=40",
        "seed=3",
        f"paths.data_dir={tmp_path}",
        "stft@synth.spectrogram=hann256",
    )
    made = generate(cfg)
    # seed 3 and the hann256 spectrogram are not moog_basic's own: the name says so
    assert made.parent == tmp_path
    assert made.name.startswith("vimh-32x32x1_8000Hz_1p0s_40dss_moog_basic_4p_seed3_synth-")
    info, files = read_dataset(made)
    assert info["spectrogram"]["kind"] == "stft" and info["spectrogram"]["n_fft"] == 256
    assert info["parameter_names"] == [
        "filter_cutoff",
        "filter_resonance",
        "filter_env_decay",
        "filter_env_amount",
    ]
    assert info["fixed_parameters"]["note_number"] == 40
    assert "Hz" in info["parameter_mappings"]["filter_cutoff"]["description"]
    assert len(files["train"].images) + len(files["test"].images) == 40
    assert str(made) in capsys.readouterr().out


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_makes_its_data_set(preset: str, tmp_path: Path) -> None:
    cfg = generation_config(f"synth={preset}", "size=32", f"paths.data_dir={tmp_path}")
    info, files = read_dataset(generate(cfg))
    varying = [k for k, v in cfg.synth.parameters.items() if isinstance(v, DictConfig)]
    assert info["parameter_names"] == varying and varying  # stk_pluck: one label, as NSMT's
    assert (info["height"], info["width"]) == (cfg.synth.height, cfg.synth.width)
    records = files["train"]
    assert records.images.shape[1:] == (1, cfg.synth.height, cfg.synth.width)
    assert (records.labels.std(axis=0) > 0).all()  # every label varies
    assert np.isfinite(records.levels).all()
    assert (records.images.reshape(len(records.images), -1).max(axis=1) == 255).all()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("+synth.parameters.tone=1", "['tone'] are unknown"),
        ("~synth.parameters.log10_decay_time", "['log10_decay_time'] are missing"),
        ("synth.parameters.note_number.step=5", "at most 255 equal steps"),
        ("synth.parameters.note_number.max=40", "min < max"),
        ("+synth.spectrogram.hop=3", "unknown keys ['hop']"),
        ("synth.height=64", "fewer than height=64"),
        ("stft@synth.spectrogram=mel_hann256 synth.height=100", "without an FFT bin"),
        ("synth.synthesizer=src.nothing.Here", "cannot be imported"),
        ("test_fraction=1.0", "at least one sample in train and one in test"),
        ("size=abc", "size='abc': give a whole number"),
        ("size=2.5", "size=2.5: give a whole number"),
        ("seed=abc", "seed='abc': give a whole number"),
        ("seed=-1", "seed=-1: give a whole number >= 0"),
        ("test_fraction=half", "test_fraction='half': give a number between 0 and 1"),
    ],
)
def test_bad_settings_say_what_is_wrong(change: str, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as error:
        generate_vimh(settings(*change.split()), tmp_path)
    assert fragment in str(error.value)
    assert list(tmp_path.iterdir()) == []


# -- the parameters change the sound -------------------------------------------------

SAW = {"note_number": 60, "note_velocity": 100, "log10_decay_time": 0.0}
MOOG = {
    "note_number": 40,
    "note_velocity": 100,
    "note_duration": 0.7,
    "filter_cutoff": 500,
    "filter_resonance": 0.0,
    "filter_env_attack": 0.01,
    "filter_env_decay": 0.2,
    "filter_env_sustain": 0.3,
    "filter_env_release": 0.1,
    "filter_env_amount": 0.0,
}


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {preset: make_plan(settings(preset=preset)) for preset in PRESETS}


def notes(plan: Plan, base: dict, name: str, values: list[float]) -> tuple[np.ndarray, ...]:
    """Images of notes that differ only in ``name``: bytes, levels and dB."""
    params = {key: np.full(len(values), float(v)) for key, v in base.items()}
    params[name] = np.asarray(values, dtype=np.float64)
    pixels, levels = spectrogram_images(plan, params)
    pixels = pixels[:, 0]  # the spectrogram channel
    low, high = levels[:, :1, None], levels[:, 1:, None]
    return pixels, levels, low + pixels / 255.0 * (high - low)


def test_higher_notes_move_energy_up(plans: dict[str, Plan]) -> None:
    _, _, db = notes(plans["simple_saw"], SAW, "note_number", [45, 55, 65, 75, 85])
    power = 10 ** (db / 10)
    rows = np.arange(db.shape[1])[None, :, None]
    centroid = (power * rows).sum(axis=(1, 2)) / power.sum(axis=(1, 2))
    assert (np.diff(centroid) > 1).all(), centroid


def test_velocity_is_a_level_not_an_image(plans: dict[str, Plan]) -> None:
    pixels, levels, _ = notes(plans["simple_saw"], SAW, "note_velocity", [50, 80, 120])
    loudest = levels[:, 1]
    assert np.allclose(np.diff(loudest), 40 * np.log10([80 / 50, 120 / 80]), atol=0.1)
    assert np.abs(pixels[0].astype(int) - pixels[2]).max() <= 1  # the image is the same


def test_shorter_decay_darkens_the_end(plans: dict[str, Plan]) -> None:
    pixels, _, _ = notes(plans["simple_saw"], SAW, "log10_decay_time", [-0.5, 0.5])
    late = pixels[:, :, -8:].mean(axis=(1, 2))
    assert late[0] + 50 < late[1]


def test_higher_cutoff_raises_high_frequencies(plans: dict[str, Plan]) -> None:
    pixels, _, db = notes(plans["moog_basic"], MOOG, "filter_cutoff", [300, 800, 1500])
    upper = db[:, 16:].mean(axis=(1, 2))
    assert (np.diff(upper) > 5).all(), upper


def test_resonance_peaks_at_the_cutoff(plans: dict[str, Plan]) -> None:
    peaks = []
    for cutoff in (500, 1200):
        base = {**MOOG, "filter_cutoff": cutoff}
        _, _, db = notes(plans["moog_basic"], base, "filter_resonance", [0.0, 0.9])
        profile = db.mean(axis=2)  # dB per mel band
        lift = (profile[1] - profile[0]) - (profile[1, 0] - profile[0, 0])  # against the bass
        peaks.append(int(np.argmax(lift)))
        assert lift.max() > 15 and lift.max() > lift[-1] + 5, lift
    # mel bands 7..11 span about 410-700 Hz, 15..20 about 1060-1650 Hz
    assert 7 <= peaks[0] <= 11 and 15 <= peaks[1] <= 20, peaks


def test_envelope_amount_and_attack_move_brightness_in_time(plans: dict[str, Plan]) -> None:
    plucked = {**MOOG, "filter_cutoff": 300, "filter_env_decay": 0.1}
    pixels, _, _ = notes(plans["moog_basic"], plucked, "filter_env_amount", [0.0, 3.0])
    early, late = pixels[:, 16:, :3].mean(axis=(1, 2)), pixels[:, 16:, 10:20].mean(axis=(1, 2))
    assert early[1] > late[1] + 30 and abs(early[0] - late[0]) < 5
    swept = {**plucked, "filter_env_amount": 3.0, "filter_env_sustain": 0.0}
    _, _, db = notes(plans["moog_envelope"], swept, "filter_env_attack", [0.005, 0.25])
    brightest = np.argmax(db[:, 16:].mean(axis=1), axis=1)  # frame of the open filter
    assert brightest[0] <= 1 < 10 <= brightest[1]


def test_release_sets_how_fast_the_filter_closes(plans: dict[str, Plan]) -> None:
    held = {**MOOG, "filter_cutoff": 300, "filter_env_amount": 3.0, "filter_env_sustain": 1.0}
    _, _, db = notes(plans["moog_envelope"], held, "filter_env_release", [0.05, 0.25])
    upper = db[:, 16:].mean(axis=1)  # per frame; note-off at 0.7 s is frame 44 of 64
    assert abs(upper[0, 40] - upper[1, 40]) < 2  # the same until note-off
    assert upper[1, 50] > upper[0, 50] + 15  # the longer release is still open


@pytest.mark.slow
def test_cli_generates_per_settings_then_refuses_a_clash(tmp_path: Path) -> None:
    args = ("size=40", f"paths.data_dir={tmp_path}", f"paths.log_dir={tmp_path / 'logs'}")
    first = run_cli("vimh/generate.py", *args)
    assert first.returncode == 0, first.stderr
    made = tmp_path / "vimh-32x32x1_8000Hz_1p0s_40dss_simple_saw_2p"
    assert (made / INFO_FILE).is_file()
    other = run_cli("vimh/generate.py", *args, "seed=5")  # another seed: another directory
    assert other.returncode == 0, other.stderr
    assert (tmp_path / f"{made.name}_seed5" / INFO_FILE).is_file()
    as_if_made_with(made, seed=5)  # the default name holding seed 5's data (older generators)
    clash = run_cli("vimh/generate.py", *args)
    assert clash.returncode == 1 and "Traceback" not in clash.stderr
    assert "seed: 5 -> 0" in clash.stderr and "overwrite=true" in clash.stderr


def plucked(notes: list[float], position: float = 0.2, decay: float = 0.0) -> np.ndarray:
    from src.vimh.synths import PluckedString

    n = len(notes)
    params = {
        "note_number": np.array(notes, float),
        "note_velocity": np.full(n, 127.0),
        "log10_decay_time": np.full(n, decay),
        "pluck_position": np.full(n, position),
    }
    return PluckedString().render(params, 8000, 8000)


def test_plucked_string_is_in_tune_and_decays_as_asked() -> None:
    notes = [40.0, 57.0, 69.0, 81.0, 88.0]  # 82 Hz to 1319 Hz at 8 kHz: 97 to 6 samples a period
    audio = plucked(notes)
    for note, row in zip(notes, audio, strict=True):
        spectrum = np.abs(np.fft.rfft(row * np.hanning(len(row))))  # 1 Hz bins
        expected = 440.0 * 2 ** ((note - 69) / 12)
        assert abs(np.argmax(spectrum) - expected) <= max(2.0, 0.003 * expected), note
        # 60 dB in 1 s: the last 0.1 s lies ~54 dB below the first 0.1 s
        first, last = (np.sqrt(np.mean(part**2)) for part in (row[:800], row[-800:]))
        assert 20 * np.log10(last / first) == pytest.approx(-54, abs=3), note
    slow = plucked([57.0], decay=np.log10(4.0))[0]
    assert np.sqrt(np.mean(slow[-800:] ** 2)) > 10 * np.sqrt(np.mean(audio[1, -800:] ** 2))


def test_plucking_the_middle_leaves_out_the_even_harmonics() -> None:
    def second_over_first(position: float) -> float:
        row = plucked([45.0], position=position)[0][:4000]  # 110 Hz
        spectrum = np.abs(np.fft.rfft(row * np.hanning(len(row))))  # 2 Hz bins
        return spectrum[105:115].max() / spectrum[50:60].max()  # 220 Hz against 110 Hz

    assert second_over_first(0.5) < 0.1 * second_over_first(0.2)


def test_unknown_generator_keys_are_refused(tmp_path: Path) -> None:
    cfg = generation_config("+pickle=true", "size=8", f"paths.data_dir={tmp_path}")
    with pytest.raises(UserInputError, match=r"no setting \['pickle'\].*no pickle files"):
        generate(cfg)
    assert list(tmp_path.iterdir()) == []  # nothing made


def test_new_options_at_their_usual_values_keep_old_data_sets_valid() -> None:
    # the hash of the default simple_saw set before sampling, pre_emphasis and envelopes
    # existed: a data set made then is still found, not refused as "other settings"
    assert make_plan(settings_from(generation_config())).settings_hash == "04dd3e5f4a85"


def test_a_shipped_value_written_as_a_float_is_the_shipped_data_set() -> None:
    """note_number.max is 88 in configs/synth/simple_saw.yaml: 88.0 on the command line
    names and hashes the same data set (it made a _synth- copy); another value does not."""
    shipped = make_plan(settings())
    as_float = make_plan(settings("synth.parameters.note_number.max=88.0"))
    assert (as_float.name, as_float.settings_hash) == (shipped.name, shipped.settings_hash)
    other = make_plan(settings("synth.parameters.note_number.max=87.0"))
    assert "_synth-" in other.name and other.settings_hash != shipped.settings_hash


def test_grid_sampling_takes_every_combination_once_in_seeded_order(tmp_path: Path) -> None:
    grid = [
        "sampling=grid",
        "synth.parameters.note_number={min:40,max:50,step:2}",
        "synth.parameters.note_velocity={min:60,max:120,step:20}",
    ]
    made = generate_vimh(settings(*grid, size=24), tmp_path)
    assert "_24dss_simple_saw_2p_grid_synth-" in made.name  # the grid and the new steps
    info, files = read_dataset(made)
    labels = np.concatenate([files["train"].labels, files["test"].labels])
    assert len({tuple(row) for row in labels}) == 24 == 6 * 4  # each combination once
    assert not (np.diff(labels[:, 0].astype(int)) >= 0).all()  # not in grid order
    assert info["generation_settings"]["sampling"] == "grid"
    with pytest.raises(UserInputError, match="24 samples. Set size=24"):
        make_plan(settings(*grid, size=30))
    with pytest.raises(UserInputError, match="needs a step.*log10_decay_time"):
        make_plan(settings("sampling=grid", "synth.parameters.log10_decay_time={min:-1,max:0}"))


def test_envelope_channels_and_pre_emphasis(tmp_path: Path) -> None:
    extra = ["synth.spectrogram.envelopes=[temporal,spectral]"]
    info, files = read_dataset(generate_vimh(settings(*extra, size=16), tmp_path))
    images = files["train"].images.astype(int)
    assert images.shape[1] == info["channels"] == 3
    temporal, spectral = images[:, 1], images[:, 2]
    assert (temporal == temporal[:, :1, :]).all() and (spectral == spectral[:, :, :1]).all()
    assert (np.diff(temporal[:, 0, :], axis=1) <= 1).all()  # a decaying note: never louder
    assert "x3_" in Path(generate_vimh(settings(*extra, size=16), tmp_path)).name

    def top_rows(*overrides: str) -> float:  # share of the image's bytes in its upper half
        info, files = read_dataset(
            generate_vimh(settings(*overrides, size=16), tmp_path / "p" / str(overrides))
        )
        pixels = files["train"].images[:, 0].astype(float)
        return pixels[:, 16:].sum() / pixels.sum()

    assert top_rows("synth.spectrogram.pre_emphasis=0.95") > top_rows()
    with pytest.raises(UserInputError, match="envelopes must be distinct names"):
        make_plan(settings("synth.spectrogram.envelopes=[temporal,loud]"))


def nsmt_classes(info: dict, name: str, labels: np.ndarray) -> np.ndarray:
    """Class indices as NSMT's published reader computes them: it needs min, max and step
    for every parameter, and takes min + q/255 (max - min), rounded to the step's grid."""
    mapping = info["parameter_mappings"][name]
    low, high, step = (float(mapping[k]) for k in ("min", "max", "step"))
    num_classes = round((high - low) / step) + 1
    classes = np.rint(labels / 255.0 * (high - low) / step).astype(int)
    assert ((0 <= classes) & (classes < num_classes)).all()
    return classes


def test_continuous_parameters_load_in_nsmt_reader_and_ours(tmp_path: Path) -> None:
    import torch

    from src.models.components.head_specs import label_classes
    from src.vimh.heads import head_specs

    info, files = read_dataset(generate_vimh(settings(preset="moog_basic", size=16), tmp_path))
    heads = {head["name"]: head for head in head_specs(info)}
    for column, name in enumerate(info["parameter_names"]):
        mapping = info["parameter_mappings"][name]
        assert mapping["continuous"] is True and mapping["step"] > 0  # NSMT needs a step
        labels = files["train"].labels[:, column]
        assert heads[name]["step"] is None and heads[name]["num_classes"] == 256  # ours: bytes
        ours = label_classes(torch.from_numpy(labels), heads[name]).numpy()
        assert (nsmt_classes(info, name, labels) == ours).all()  # one class per byte in both
