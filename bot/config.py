"""Configuration from the environment and `.env`, one settings class per section."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_FILE = ".env"
_COMMON = SettingsConfigDict(env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")

PUBLIC_TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
LOCAL_TELEGRAM_DOWNLOAD_LIMIT = 2000 * 1024 * 1024


class ConfigError(Exception):
    """A configuration value is wrong; the message names the variable."""


@dataclass(frozen=True, slots=True)
class AdminRef:
    platform: str
    user_id: str


class TelegramSettings(BaseSettings):
    model_config = _COMMON

    bot_token: SecretStr | None = Field(default=None, alias="BOT_TOKEN")
    api_url: str | None = Field(default=None, alias="TELEGRAM_API_URL")
    local_files: bool = Field(default=False, alias="TELEGRAM_LOCAL_FILES")

    @field_validator("bot_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            head, _, tail = value.get_secret_value().partition(":")
            if not head.isdigit() or not tail:
                raise ValueError("expected a token like 123456:ABC-DEF from @BotFather")
        return value

    @field_validator("api_url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected a URL like http://127.0.0.1:8081")
        return value

    @property
    def download_limit(self) -> int:
        return LOCAL_TELEGRAM_DOWNLOAD_LIMIT if self.api_url else PUBLIC_TELEGRAM_DOWNLOAD_LIMIT


class StorageSettings(BaseSettings):
    model_config = _COMMON

    data_dir: Path = Field(default=Path("data"), alias="DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return driver + value[len(plain) :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("expected sqlite+aiosqlite:///path or postgresql+asyncpg://…")
        return value

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bot.sqlite3').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"


class AppSettings(BaseSettings):
    model_config = _COMMON

    timezone: str = Field(default="Europe/Moscow", alias="TIMEZONE")
    admins: Annotated[list[AdminRef], NoDecode] = Field(default_factory=list, alias="ADMINS")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone, expected e.g. Europe/Moscow") from exc
        return value

    @field_validator("admins", mode="before")
    @classmethod
    def _parse_admins(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        admins = []
        for chunk in value.replace(";", ",").split(","):
            chunk = chunk.strip()
            if not chunk:
                continue
            platform, _, user_id = chunk.partition(":")
            if platform not in ("tg", "vk") or not user_id.strip().isdigit():
                raise ValueError(f"{chunk!r}: expected tg:<user id> or vk:<user id>")
            admins.append(AdminRef(platform, user_id.strip()))
        return admins

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _parse_clock(value: str) -> time:
    hours, _, minutes = value.strip().partition(":")
    return time(int(hours), int(minutes or 0))


class ReminderSettings(BaseSettings):
    """When reminders go out and how fast the bot may send unprompted messages."""

    model_config = SettingsConfigDict(**_COMMON, populate_by_name=True)

    enabled: bool = Field(default=True, alias="REMINDERS_ENABLED")
    # Days before a deadline; 0 is the day itself.
    offsets: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(7, 3, 1, 0), alias="REMINDER_OFFSETS"
    )
    send_time: time = Field(default=time(9, 0), alias="REMINDER_TIME")  # recipient's local time
    # A delivery not sent by due time + grace (bot was down) is marked missed, never sent.
    grace_minutes: int = Field(default=240, ge=0, alias="REMINDER_GRACE_MINUTES")
    # Never send at night (local time of the recipient): quiet from start to end.
    quiet_start: time = Field(default=time(21, 0), alias="REMINDER_QUIET_START")
    quiet_end: time = Field(default=time(8, 0), alias="REMINDER_QUIET_END")
    overdue_after_days: int = Field(default=1, ge=1, alias="REMINDER_OVERDUE_AFTER_DAYS")
    # How far back a restarted bot records deliveries it never planned as missed.
    missed_lookback_days: int = Field(default=3, ge=0, alias="REMINDER_MISSED_LOOKBACK_DAYS")
    # A claim older than this is taken back (not handed over yet) or failed (mid-send).
    claim_timeout_seconds: float = Field(default=600, gt=0, alias="REMINDER_CLAIM_TIMEOUT")
    rate_per_s: float = Field(default=25.0, gt=0, alias="SEND_RATE_PER_S")
    per_chat_per_s: float = Field(default=1.0, gt=0, alias="SEND_PER_CHAT_PER_S")
    concurrency: int = Field(default=16, ge=1, alias="SEND_CONCURRENCY")
    max_retries: int = Field(default=5, ge=0, alias="SEND_MAX_RETRIES")

    @field_validator("offsets", mode="before")
    @classmethod
    def _parse_offsets(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
            except ValueError:
                raise ValueError("expected days before the deadline, e.g. 7,3,1,0") from None
        if isinstance(value, list | tuple):
            if any(int(v) < 0 for v in value):
                raise ValueError("days before the deadline cannot be negative")
            return tuple(sorted({int(v) for v in value}, reverse=True))
        return value

    @field_validator("send_time", "quiet_start", "quiet_end", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return _parse_clock(value)
            except ValueError:
                raise ValueError("expected a time like 09:00") from None
        return value

    @model_validator(mode="after")
    def _send_time_is_daytime(self) -> ReminderSettings:
        if self.is_quiet(self.send_time):
            raise ValueError(
                f"REMINDER_TIME {self.send_time:%H:%M} falls into the quiet hours "
                f"{self.quiet_start:%H:%M}–{self.quiet_end:%H:%M}"
            )
        return self

    def is_quiet(self, moment: time) -> bool:
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return False
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.grace_minutes)


class WebhookSettings(BaseSettings):
    """One aiohttp server for every platform's webhook; off unless WEBHOOK_BASE_URL is set."""

    model_config = _COMMON

    base_url: str | None = Field(default=None, alias="WEBHOOK_BASE_URL")
    listen: str = Field(default="127.0.0.1:8080", alias="WEBHOOK_LISTEN")
    telegram_secret: SecretStr | None = Field(default=None, alias="TELEGRAM_WEBHOOK_SECRET")

    @field_validator("base_url")
    @classmethod
    def _base_url_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected a public URL like https://bot.example.ru")
        return value

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, e.g. 127.0.0.1:8080")
        return value.strip()

    @field_validator("telegram_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and -.
        if value is not None:
            secret = value.get_secret_value()
            if len(secret) > 256 or not all(
                c.isascii() and (c.isalnum() or c in "_-") for c in secret
            ):
                raise ValueError("expected up to 256 characters: letters, digits, _ and -")
        return value

    @property
    def enabled(self) -> bool:
        return self.base_url is not None

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class Settings(BaseModel):
    telegram: TelegramSettings
    storage: StorageSettings
    app: AppSettings
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)


def _variable_name(section: type[BaseSettings], loc: tuple) -> str:
    field = section.model_fields.get(str(loc[0])) if loc else None
    return (field.alias if field and field.alias else str(loc[0] if loc else "?")).upper()


def load_settings(env_file: str | Path | None = ENV_FILE) -> Settings:
    """Read every section; a bad value raises ConfigError naming the variable."""
    sections = {}
    for key, section in (
        ("telegram", TelegramSettings),
        ("storage", StorageSettings),
        ("app", AppSettings),
        ("reminders", ReminderSettings),
        ("webhook", WebhookSettings),
    ):
        try:
            sections[key] = section(_env_file=env_file)  # type: ignore[call-arg]
        except ValidationError as exc:
            problems = "; ".join(
                f"{_variable_name(section, err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Invalid configuration — {problems}") from None
    return Settings(**sections)
