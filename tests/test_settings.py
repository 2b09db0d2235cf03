"""Settings come from flags > environment > config file > defaults, once, into a frozen object."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from summarizer.errors import ConfigError
from summarizer.settings import Settings, build_settings


def test_precedence_flag_over_env_over_config_over_default(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('model = "from-config"\nconcurrency = 3\nrpm = 100\n')
    env = {"SUMMARIZER_MODEL": "from-env", "SUMMARIZER_CONCURRENCY": "5", "OPENAI_API_KEY": "sk-x"}
    s = build_settings({"model": "from-flag"}, env, config)
    assert s.model == "from-flag"
    assert s.concurrency == 5
    assert s.rpm == 100.0
    assert s.max_reasks == Settings().max_reasks


def test_settings_are_frozen_and_hide_the_key():
    s = build_settings({}, {"OPENAI_API_KEY": "sk-secret-marker"}, Path("/nonexistent.toml"))
    with pytest.raises(ValidationError, match="frozen"):
        s.model = "x"  # type: ignore[misc]
    assert "sk-secret-marker" not in repr(s)


def test_backend_is_local_without_key_or_base_url():
    s = build_settings({}, {}, Path("/nonexistent.toml"))
    assert s.resolved_backend == "local"
    assert build_settings({}, {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, Path("/x")).resolved_backend == "openai"


def test_openai_backend_without_key_explains_the_fix():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set: export it, or pass --base-url"):
        build_settings({"backend": "openai"}, {}, Path("/nonexistent.toml"))


def test_bad_config_file_is_a_config_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_settings({}, {}, config)


def test_unknown_config_key_is_named(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("modle = 'x'\n")
    with pytest.raises(ConfigError, match="unknown setting 'modle'"):
        build_settings({}, {}, config)


def test_bad_number_in_environment_is_a_config_error():
    with pytest.raises(ConfigError, match="SUMMARIZER_CONCURRENCY"):
        build_settings({}, {"SUMMARIZER_CONCURRENCY": "many"}, Path("/x"))


def test_workers_come_from_flag_environment_or_config_and_must_be_positive(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("workers = 3\n")
    assert build_settings({}, env={}, config_file=config).workers == 3
    assert build_settings({}, env={"SUMMARIZER_WORKERS": "2"}, config_file=config).workers == 2
    assert build_settings({"workers": 1}, env={"SUMMARIZER_WORKERS": "2"}, config_file=config).workers == 1
    assert build_settings({}, env={}, config_file=tmp_path / "none.toml").workers is None  # automatic
    with pytest.raises(ConfigError, match="--workers 0 from the command line: must be greater than or equal to 1"):
        build_settings({"workers": 0}, env={}, config_file=tmp_path / "none.toml")


def test_the_model_name_is_the_one_the_chosen_backend_runs(tmp_path: Path) -> None:
    from summarizer.backends import model_name

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    none = Path("/nonexistent.toml")
    # A key chooses the OpenAI backend: a model file set elsewhere is not its model.
    remote = build_settings({"model_path": gguf}, {"OPENAI_API_KEY": "sk-x"}, none)
    assert model_name(remote) == "gpt-4o-mini"
    # The embedded backend runs its file, whatever --model says.
    local = build_settings({"backend": "local", "model": "gpt-4o", "model_path": gguf}, {}, none)
    assert model_name(local) == "tiny.gguf"
