"""Serve optuna-dashboard for a search's study storage on 127.0.0.1 (``make optuna-dashboard``).

``python src/tools/dashboard.py hparams_search=digits_optuna [port=8080]`` opens the
storage that search config names (SQLite, PostgreSQL or a journal file, as the
sweeper does), prints the address of the study's page, and serves until Ctrl-C.
Loopback only: the dashboard has no authentication, and it can delete studies.
"""

from __future__ import annotations

import socket

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.errors import UserInputError, exit_on_user_error  # noqa: E402

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def study_storage(cfg: DictConfig) -> tuple[object, str, str]:
    """The opened storage of the search, its URL and the study name (which must exist)."""
    from hydra.core.hydra_config import HydraConfig

    from hydra_plugins.optuna_study_sweeper._storage import open_storage, printable_url, study_sizes

    sweeper = HydraConfig.get().sweeper
    search = HydraConfig.get().runtime.choices.get("hparams_search")
    url, name = sweeper.get("storage"), sweeper.get("study_name")
    if not search or not url:
        raise UserInputError(
            "Name the search whose study to watch: hparams_search=<name> "
            "(make optuna-dashboard STUDY=<name>), with a storage (hydra.sweeper.storage)."
        )
    if str(url).startswith("sqlite:///"):
        from pathlib import Path

        if not Path(str(url)[len("sqlite:///") :]).is_file():
            raise UserInputError(
                f"No study database at {url}: run the search first "
                f"(python src/train.py hparams_search={search})."
            )
    storage = open_storage(str(url))
    studies, shown = study_sizes(storage), printable_url(str(url))  # no password printed
    if name not in studies:
        raise UserInputError(
            f"No study named {name} in {shown}; the studies there: {sorted(studies) or 'none'}."
        )
    return storage, shown, str(name)


@hydra.main(version_base="1.3", config_path="../../configs", config_name="dashboard.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from optuna_dashboard import run_server

    storage, url, name = study_storage(cfg)
    port = int(cfg.port) if cfg.get("port") else free_port()
    print(f"optuna-dashboard of {url} (study {name}): http://{HOST}:{port}/dashboard/", flush=True)
    run_server(storage, host=HOST, port=port)


if __name__ == "__main__":
    main()
