from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings


def test_defaults(settings, tmp_path):
    assert settings.telegram.bot_token is None
    assert settings.telegram.download_limit == 20 * 1024 * 1024
    assert settings.storage.url.startswith("sqlite+aiosqlite:///")
    assert settings.storage.url.endswith("data/bot.sqlite3")
    assert settings.app.timezone == "Europe/Moscow"
    assert [(a.platform, a.user_id) for a in settings.app.admins] == [("tg", "900")]


def test_values_from_environment(monkeypatch):
    monkeypatch.setenv("BOT_TOKEN", "123456:ABC-secret")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    monkeypatch.setenv("ADMINS", "tg:1, vk:2")
    monkeypatch.setenv("TIMEZONE", "Europe/Kaliningrad")
    settings = load_settings(env_file=None)
    assert settings.telegram.api_url == "http://127.0.0.1:8081"
    assert settings.telegram.download_limit > 20 * 1024 * 1024
    assert settings.storage.url == "postgresql+asyncpg://u@127.0.0.1/db"
    assert "ABC-secret" not in repr(settings) and "ABC-secret" not in str(settings.model_dump())


def test_env_file_is_read(tmp_path, monkeypatch):
    for name in ("BOT_TOKEN", "TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text("TIMEZONE=Asia/Yekaterinburg\n", encoding="utf-8")
    assert load_settings(env_file=env).app.timezone == "Asia/Yekaterinburg"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOT_TOKEN", "not-a-token"),
        ("TELEGRAM_API_URL", "127.0.0.1:8081"),
        ("DATABASE_URL", "mysql://x"),
        ("TIMEZONE", "Mars/Olympus"),
        ("ADMINS", "telegram:abc"),
    ],
)
def test_a_wrong_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(env_file=None)
    assert name in str(error.value)
    assert value not in str(error.value) or name != "BOT_TOKEN"
