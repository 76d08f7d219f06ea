from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


ENGLISH = ("Invalid configuration", "Value error", "Input should", "expected", "Field required")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LOG_LEVEL", "VERBOSE", "INFO"),
        ("TIMEZONE", "Mars/Olympus", "Europe/Moscow"),
        ("BOT_TOKEN", "not-a-token", "@BotFather"),
        ("TELEGRAM_API_URL", "127.0.0.1:8081", "http://"),
        ("TELEGRAM_LOCAL_FILES", "может быть", "true"),
        ("DATABASE_URL", "mysql://x", "postgresql+asyncpg://"),
        ("ADMINS", "telegram:abc", "tg:"),
        ("REMINDERS_ENABLED", "maybe", "false"),
        ("REMINDER_OFFSETS", "7,три", "7,3,1,0"),
        ("REMINDER_OFFSETS", "-1", "7,3,1,0"),
        ("REMINDER_TIME", "25:99", "09:00"),
        ("REMINDER_TIME", "23:30", "21:00"),  # inside the quiet hours
        ("REMINDER_GRACE_MINUTES", "-5", "0"),
        ("REMINDER_GRACE_MINUTES", "много", "целое"),
        ("SEND_RATE_PER_S", "0", "0"),
        ("SEND_RATE_PER_S", "fast", "число"),
    ],
)
def test_every_configuration_error_is_one_russian_line(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(env_file=None)
    message = str(error.value)
    assert message.startswith(name), message
    assert expected in message, message
    assert re.search("[а-яё]{4}", message), message
    assert not any(word in message for word in ENGLISH), message
    assert "\n" not in message and len(message) < 200, message
    assert name != "BOT_TOKEN" or value not in message


def test_several_errors_are_listed_one_per_line(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("REMINDER_TIME", "полдень")
    with pytest.raises(ConfigError) as error:
        load_settings(env_file=None)
    lines = str(error.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["LOG_LEVEL", "REMINDER_TIME"]


def test_log_level_is_normalised(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", " debug ")
    assert load_settings(env_file=None).app.log_level == "DEBUG"


def test_an_unreadable_env_file_is_a_configuration_error(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes("TIMEZONE=Европа\n".encode("cp1251"))
    with pytest.raises(ConfigError) as error:
        load_settings(env_file=env)
    assert ".env" in str(error.value) and "UTF-8" in str(error.value)


@pytest.mark.parametrize(
    ("name", "value"), [("LOG_LEVEL", "VERBOSE"), ("TIMEZONE", "Mars/Olympus")]
)
def test_the_cli_reports_a_bad_setting_without_a_traceback(tmp_path, name, value):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), name: value}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{name}: "), result.stderr
    assert len(lines) <= 3 and not any(word in result.stderr for word in ENGLISH)
