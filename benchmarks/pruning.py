"""What the median pruner saves in a search, and what it costs (``make bench-pruning``).

Two 16-trial TPE searches of the digits MLP (``hparams_search=digits_optuna``), the
same seed, one without a pruner and one with ``hydra/sweeper/pruner=median``. Prints
the training epochs each spent (every trial reports one value per epoch it trained)
and the ratio, and each search's best ``val/acc_best``. Counts, not timings.

    uv run --frozen python benchmarks/pruning.py [--trials 16] [--epochs 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]


def search(log_dir: Path, trials: int, epochs: int, pruner: str) -> optuna.Study:
    """Run one search in its own log folder; its study."""
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "hparams_search=digits_optuna",
        f"hydra/sweeper/pruner={pruner}",
        f"hydra.sweeper.n_trials={trials}",
        f"trainer.max_epochs={epochs}",
        "callbacks=none",  # no early stopping: every epoch a pruner does not stop is trained
        "extras.print_config=false",
        f"paths.log_dir={log_dir}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"The {pruner} search failed:\n{done.stderr[-3000:]}")
    storage = f"sqlite:///{log_dir}/optuna/optuna.db"
    return optuna.load_study(study_name="digits_optuna", storage=storage)


def epochs_trained(study: optuna.Study) -> int:
    return sum(len(trial.intermediate_values) for trial in study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pruner in ("none", "median"):
            study = search(Path(tmp) / pruner, args.trials, args.epochs, pruner)
            pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
            results[pruner] = (epochs_trained(study), study.best_value, pruned)
    (full, best_full, _), (cut, best_cut, pruned) = results["none"], results["median"]
    print(f"{args.trials} TPE trials of up to {args.epochs} epochs, digits MLP, same seed")
    print(f"  no pruner:     {full:4d} epochs, best val/acc_best {best_full:.4f}")
    print(f"  median pruner: {cut:4d} epochs, best val/acc_best {best_cut:.4f} ({pruned} pruned)")
    print(f"  epochs ratio (median / none): {cut / full:.2f}x")
    print(f"  best val/acc_best difference (median - none): {best_cut - best_full:+.4f}")


if __name__ == "__main__":
    main()
