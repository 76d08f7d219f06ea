"""WebhookSettings: off by default, host:port and the secret checked, the secret never shown."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.telegram import webhook_secret_for

WEBHOOK_VARS = ("WEBHOOK_BASE_URL", "WEBHOOK_LISTEN", "TELEGRAM_WEBHOOK_SECRET")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in WEBHOOK_VARS:
        monkeypatch.delenv(name, raising=False)


def test_webhooks_are_off_by_default(settings):
    assert settings.webhook.enabled is False
    assert (settings.webhook.host, settings.webhook.port) == ("127.0.0.1", 8080)


def test_webhook_values(monkeypatch):
    monkeypatch.setenv("WEBHOOK_BASE_URL", "https://bot.example.ru/")
    monkeypatch.setenv("WEBHOOK_LISTEN", "0.0.0.0:8443")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "Very_secret-42")
    webhook = load_settings(env_file=None).webhook
    assert webhook.enabled and webhook.base_url == "https://bot.example.ru"
    assert (webhook.host, webhook.port) == ("0.0.0.0", 8443)
    assert "Very_secret-42" not in repr(webhook)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_LISTEN", "8080"),
        ("WEBHOOK_LISTEN", "127.0.0.1:99999"),
        ("WEBHOOK_BASE_URL", "bot.example.ru"),
        ("TELEGRAM_WEBHOOK_SECRET", "пароль с пробелами"),
    ],
)
def test_bad_webhook_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(env_file=None)


def test_derived_secret_is_stable_and_telegram_shaped():
    secret = webhook_secret_for("123:ABC")
    assert secret == webhook_secret_for("123:ABC") != webhook_secret_for("123:ABD")
    assert len(secret) <= 256 and secret.isalnum() and "ABC" not in secret
    assert webhook_secret_for("123:ABC", "mine") == "mine"
