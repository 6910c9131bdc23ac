"""What a person sees: MLflow's runs table and TensorBoard's HPARAMS tab of a 2-job
multirun, served on loopback ports and photographed by headless chromium (make chromium).

Each check reads the server's REST API (what the page is built from) and the page's own
text once its JavaScript has drawn it. ``UI_SCREENSHOTS=<folder>`` keeps the PNGs there
(``make screenshots`` uses logs/screenshots/)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import end_process_group, run_cli
from tests.headless_browser import HeadlessBrowser

pytestmark = pytest.mark.slow
TINY = [
    "model.optimizer.lr=0.001,0.003",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=5",
    "++trainer.limit_val_batches=2",
    "extras.print_config=false",
]
RUN_NAMES = ["train#0 model.optimizer.lr=0.001", "train#1 model.optimizer.lr=0.003"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2-job multirun per logger, as a user would start them."""
    if shutil.which("chromium") is None:
        pytest.fail("no chromium on PATH: run `make chromium` (Debian's headless chromium)")
    log_dir = tmp_path_factory.mktemp("ui_logs")
    for logger in ("mlflow", "tensorboard"):
        done = run_cli(
            "train.py", "-m", f"logger={logger}", *TINY, f"paths.log_dir={log_dir}",
            f"hydra.sweep.dir={log_dir / logger}",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    return log_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=60) as r:
        return json.load(r)


@contextmanager
def serve(command: list[str], ready_url: str, timeout: float = 300) -> Iterator[None]:
    """A server in its own process group, ended (children too) when the block ends."""
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        # mlflow 3.17's server takes over a minute to answer on a busy 2-core machine
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=10).close()
                break
            except OSError:
                assert server.poll() is None, f"{command[2]} exited with {server.returncode}"
                assert time.monotonic() < deadline, f"{ready_url} did not answer in {timeout} s"
                time.sleep(1)
        yield
    finally:
        end_process_group(server)


def photograph(url: str, png: Path, *needles: str) -> str:
    """The page's text once it shows every needle; its screenshot saved to ``png``."""
    with HeadlessBrowser(png.parent / f"{png.stem}_profile") as page:
        page.open(url)
        try:
            text = page.wait_for_text(*needles)
            time.sleep(1)  # the last frame of the table's layout
        finally:
            page.screenshot(png)
    keep = os.environ.get("UI_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return text


def test_mlflow_runs_table_tells_the_jobs_apart(logs: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--workers", "1",
        "--backend-store-uri", f"sqlite:///{logs}/mlflow/mlflow.db",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with serve(command, f"{base}/health"):
        api = f"{base}/api/2.0/mlflow"
        experiment = request(f"{api}/experiments/get-by-name?experiment_name=train")
        experiment_id = experiment["experiment"]["experiment_id"]
        runs = request(f"{api}/runs/search", {"experiment_ids": [experiment_id]})["runs"]
        assert sorted(r["info"]["run_name"] for r in runs) == RUN_NAMES
        for run in runs:
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            assert not [k for k, v in params.items() if "???" in v]  # values filled in
            assert params["model/num_classes"] == "10"
            assert params["model/net/input_shape"] == "[1, 8, 8]"
            tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
            assert tags["multirun"] == "mlflow" and tags["dev"] == "true"
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert metrics["test/acc"] > 0.15  # 5 batches learn something of 10 classes
        # MLflow 3 opens on its GenAI view; the runs table is its "Model training" view
        text = photograph(
            f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning",
            tmp_path / "mlflow_runs_table.png",
            *RUN_NAMES,
        )
        assert "2 matching runs" in text and "???" not in text


def test_tensorboard_hparams_tab_shows_the_swept_value_and_the_metric(
    logs: Path, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "tensorboard.main", "--logdir", str(logs / "tensorboard"),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with serve(command, f"{base}/data/logdir"):
        hparams = f"{base}/data/plugin/hparams"
        experiment = request(f"{hparams}/experiment", {"experimentName": ""})
        # TensorBoard ticks the first 5 hyperparameters: the swept one must be among them
        first = [info["name"] for info in experiment["hparamInfos"][:5]]
        assert first[0] == "model/optimizer/lr", first
        metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
        assert metrics == ["val/acc_best"]  # the optimized metric, no hp_metric = -1
        groups = request(
            f"{hparams}/session_groups",
            {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
             "colParams": [{"hparam": "model/optimizer/lr"},
                           {"metric": {"tag": "val/acc_best"}}],
             "startIndex": 0, "sliceSize": 10},
        )["sessionGroups"]  # fmt: skip
        lrs = sorted(g["hparams"]["model/optimizer/lr"] for g in groups)
        assert lrs == [0.001, 0.003]
        for group in groups:
            assert "???" not in json.dumps(group["hparams"])
            (value,) = [m["value"] for m in group["metricValues"]]
            assert 0.15 < value <= 1.0
        text = photograph(
            f"{base}/#hparams", tmp_path / "tensorboard_hparams.png", "model/optimizer/lr",
            "val/acc_best", "0.0010000", "0.0030000",
        )  # fmt: skip
        assert "hp_metric" not in text and "???" not in text
