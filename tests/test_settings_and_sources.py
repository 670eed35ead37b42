"""Configuration: flags and GATEWAY_* variables, and the sources file; bad values fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ingest.sources import Sources, SourcesError
from gateway.settings import Settings, SettingsError


def test_environment_and_overrides() -> None:
    settings = Settings.load(
        {"GATEWAY_PORT": "9000", "GATEWAY_PARTITIONS": "8", "GATEWAY_REDIS_URL": "redis://r:1"},
        port=9100,
    )
    assert settings.port == 9100  # a flag beats the environment
    assert settings.partitions == 8
    assert settings.redis_url == "redis://r:1"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"GATEWAY_PORT": "http"}, "GATEWAY_PORT='http'"),
        ({"GATEWAY_PARTITIONS": "0"}, "GATEWAY_PARTITIONS='0'"),
        ({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/33"}, "GATEWAY_TRUSTED_PROXIES"),
        ({"GATEWAY_MAX_MESSAGE_BYTES": "600000"}, "GATEWAY_MAX_MESSAGE_BYTES='600000'"),
    ],
)
def test_bad_values_name_the_key_and_value(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("[", r"\[")):
        Settings.load(environ)


def test_sources_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        """
[[source]]
id = "web"
write_keys = ["wk_live_9f2c", "wk_live_old"]   # several, for rotation
enabled = true

[[source]]
id = "legacy"
write_keys = ["wk_legacy"]
enabled = false
"""
    )
    sources = Sources.from_file(path)
    assert not sources.open
    web = sources.resolve("wk_live_old")
    assert web is not None
    assert web.id == "web"
    assert sources.resolve("wk_legacy") is None
    assert sources.resolve("nope") is None
    assert sources.resolve(None) is None
    assert len(sources) == 2


def test_no_sources_file_is_open_mode() -> None:
    sources = Sources.from_file(None)
    resolved = sources.resolve(None)
    assert sources.open
    assert resolved is not None
    assert resolved.id == "default"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[source]]\nid = 'a'\n", "missing required field `write_keys`"),
        ("[[source]]\nid = 'a'\nwrite_keys = ['k']\nenabeld = true\n", "unknown field `enabeld`"),
        ("[[source]]\nid = ''\nwrite_keys = ['k']\n", "$.source[0].id"),
        (
            "[[source]]\nid = 'a'\nwrite_keys = ['k']\n[[source]]\nid = 'b'\nwrite_keys = ['k']\n",
            "listed under both",
        ),
        (
            "[[source]]\nid = 'a'\nwrite_keys = ['k']\n[[source]]\nid = 'a'\nwrite_keys = ['j']\n",
            "used twice",
        ),
        ("[[source]\n", "not valid TOML"),
    ],
)
def test_bad_sources_file_says_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    with pytest.raises(SourcesError, match=message.replace("$", r"\$").replace("[", r"\[")):
        Sources.from_file(path)


def test_missing_sources_file(tmp_path: Path) -> None:
    with pytest.raises(SourcesError, match="cannot read sources file"):
        Sources.from_file(tmp_path / "absent.toml")


def test_deploy_example_sources_file_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "deploy" / "sources.example.toml"
    sources = Sources.from_file(example)
    stripe = sources.resolve("wk_stripe_77e0")
    assert stripe is not None
    assert stripe.webhook_event == "Stripe Event"
