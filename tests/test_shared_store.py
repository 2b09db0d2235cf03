"""The shared result store: first writer wins on a folder and on S3 (moto's server), damage is a miss."""

from __future__ import annotations

import threading
import uuid

import pytest

from summarizer.errors import ConfigError
from summarizer.shared_store import FileStore, S3Store, open_store

ENTRY = {"result": {"title": "first"}, "usage": {"requests": 1}}
OTHER = {"result": {"title": "second"}, "usage": {"requests": 1}}


def test_open_store_reads_file_and_s3_uris_and_refuses_others(tmp_path):
    assert isinstance(open_store(tmp_path.as_uri()), FileStore)
    store = open_store("s3://bucket/some/prefix", "http://127.0.0.1:9")
    assert isinstance(store, S3Store) and (store.bucket, store.prefix) == ("bucket", "some/prefix")
    for bad in ("/plain/path", "http://host/x", "s3://", "file://host/x"):
        with pytest.raises(ConfigError, match="--store"):
            open_store(bad)


def test_folder_store_first_writer_wins_even_when_writers_race(tmp_path):
    store = FileStore(tmp_path / "store")
    assert store.get("ab12") is None
    winners: list[bool] = []
    barrier = threading.Barrier(8)

    def write(value: dict) -> None:
        barrier.wait()
        winners.append(store.put("ab12", value))

    threads = [threading.Thread(target=write, args=(ENTRY if i % 2 else OTHER,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert winners.count(True) == 1 and len(winners) == 8
    kept = store.get("ab12")
    assert kept in (ENTRY, OTHER)
    assert store.put("ab12", OTHER if kept == ENTRY else ENTRY) is False
    assert store.get("ab12") == kept
    assert [p.name for p in (tmp_path / "store" / "ab").iterdir()] == ["ab12.json"]  # no temporary left
    assert (tmp_path / "store" / "ab" / "ab12.json").stat().st_mode & 0o044 == 0o044  # other users' runs read it


def test_a_damaged_entry_in_the_folder_store_is_a_miss(tmp_path):
    store = FileStore(tmp_path)
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "cd34.json").write_bytes(b'{"result": {"tit')
    assert store.get("cd34") is None


def test_s3_store_against_an_s3_server_honours_if_none_match(s3_server):
    store = S3Store(s3_server.bucket, f"t-{uuid.uuid4().hex[:8]}", s3_server.url)
    assert store.get("ef56") is None
    assert store.put("ef56", ENTRY) is True
    assert store.put("ef56", OTHER) is False  # the server answered 412: the first result stays
    assert store.get("ef56") == ENTRY


def test_engine_ray_without_ray_installed_names_the_install_command(monkeypatch):
    import sys

    from summarizer.engines.ray import import_ray
    from summarizer.errors import ExtraMissing

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ExtraMissing, match=r"pip install 'summarizer\[ray\]'"):
        import_ray()


@pytest.mark.parametrize("use", ["get", "put"])
def test_an_s3_store_without_boto3_names_the_install_command(monkeypatch, use):
    import sys

    from summarizer.errors import ExtraMissing

    for module in ("boto3", "botocore", "botocore.config", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    store = S3Store("bucket", "p", "http://127.0.0.1:9")
    with pytest.raises(ExtraMissing, match="needs boto3"):
        store.get("ab") if use == "get" else store.put("ab", ENTRY)


def test_engine_and_store_settings_come_from_flags_and_environment(tmp_path):
    from summarizer.settings import build_settings

    settings = build_settings({"engine": "ray", "store": "file:///shared/results"},
                              {"RAY_ADDRESS": "10.0.0.1:6379", "SUMMARIZER_STORE_ENDPOINT": "http://minio:9000"},
                              tmp_path / "none.toml")
    assert (settings.engine, settings.ray_address, settings.store, settings.store_endpoint) == (
        "ray", "10.0.0.1:6379", "file:///shared/results", "http://minio:9000")
    with pytest.raises(ConfigError, match="--engine"):
        build_settings({"engine": "spark"}, {}, tmp_path / "none.toml")
