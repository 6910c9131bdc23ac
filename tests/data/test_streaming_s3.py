"""Streaming shards from object storage: a conversion uploaded to a bucket on a local
S3-compatible server (moto's standalone server, a real HTTP server speaking the S3
protocol, on 127.0.0.1 with dummy credentials) trains a model through
``data.input_dir=s3://...`` with the endpoint in ``data.storage_options``; litdata
downloads the chunks into ``data.cache_dir``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.train import train
from tests.conftest import compose_config
from tests.data.test_streaming import convert

BUCKET = "shards-bucket"
PREFIX = "shards/digits"
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a thread of this process, on a free port; dummy credentials."""
    from moto.server import ThreadedMotoServer  # dev dependency moto[server]

    saved = {key: os.environ.get(key) for key in DUMMY_ENV}
    os.environ.update(DUMMY_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def s3_shards(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """data=digits converted by to_shards.py, every file uploaded to s3://BUCKET/PREFIX."""
    import boto3

    local = convert(tmp_path_factory.mktemp("s3_shards") / "digits")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{PREFIX}/{path.relative_to(local).as_posix()}")
    return f"s3://{BUCKET}/{PREFIX}", local


@pytest.fixture
def obstore_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """litdata 0.2.76 downloads S3 chunks with obstore, whose client refuses a plain
    http:// endpoint unless its client options allow it (and litdata passes fixed client
    options, taking none from storage_options or the environment): allow http here, for
    the local server. An https endpoint (AWS, R2, MinIO behind TLS) needs nothing."""
    import litdata.streaming.downloader as downloader

    options = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": True}
    monkeypatch.setattr(downloader, "_OBSTORE_CLIENT_OPTIONS", options)


@pytest.mark.usefixtures("obstore_over_http")
def test_a_model_trained_from_shards_in_an_s3_bucket_learns(
    s3_shards: tuple[str, Path], s3_endpoint: str, tmp_path: Path
) -> None:
    url, local = s3_shards
    cache = tmp_path / "cache"
    overrides = [
        "data=streaming", f"data.input_dir={url}", f"data.cache_dir={cache}",
        f"+data.storage_options.endpoint_url={s3_endpoint}", "data.num_workers=1",
        "trainer.max_epochs=4", "logger=none", "seed=3",
    ]  # fmt: skip
    cfg = compose_config("train.yaml", overrides, tmp_path / "run")
    metrics, objects = train(cfg)
    assert objects["datamodule"].input_dir == url
    assert float(metrics["test/acc"]) >= 0.85  # chance is 0.10
    # every split's chunk came over the S3 protocol into the cache, byte for byte
    fetched = sorted(cache.rglob("chunk-*.bin"))
    stored = sorted(local.rglob("chunk-*.bin"))
    assert len(fetched) == len(stored) == 3, fetched
    assert sorted(p.read_bytes() for p in fetched) == sorted(p.read_bytes() for p in stored)
