"""Configuration from the environment and `.env`, one settings class per section."""

from __future__ import annotations

import re
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
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_FILE = ".env"
_COMMON = SettingsConfigDict(env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")

PUBLIC_TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
LOCAL_TELEGRAM_DOWNLOAD_LIMIT = 2000 * 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SECRET_VARIABLES = {"BOT_TOKEN", "REDIS_URL"}  # never repeated in an error message


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
                raise ValueError("ожидается токен от @BotFather вида 123456:ABC-DEF")
        return value

    @field_validator("api_url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("ожидается адрес вида http://127.0.0.1:8081")
        return value

    @property
    def download_limit(self) -> int:
        return LOCAL_TELEGRAM_DOWNLOAD_LIMIT if self.api_url else PUBLIC_TELEGRAM_DOWNLOAD_LIMIT


DEFAULT_MAX_API_URL = "https://platform-api2.max.ru"  # schema.yaml of max-messenger/api-schema
_SECRET = re.compile(r"[A-Za-z0-9_-]{5,256}")


class MaxSettings(BaseSettings):
    """The MAX messenger bot (business.max.ru)."""

    model_config = _COMMON

    token: SecretStr | None = Field(default=None, alias="MAX_TOKEN")
    api_url: str = Field(default=DEFAULT_MAX_API_URL, alias="MAX_API_URL")
    # Sent back by MAX in X-Max-Bot-Api-Secret; the API allows 5-256 of A-Z a-z 0-9 _ -.
    webhook_secret: SecretStr | None = Field(default=None, alias="MAX_WEBHOOK_SECRET")
    # A CA bundle (PEM) trusted in addition to the system store: the Russian Trusted Root CA.
    ca_file: Path | None = Field(default=None, alias="MAX_CA_FILE")

    @field_validator("token", "webhook_secret", "ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_url", mode="before")
    @classmethod
    def _url_shape(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_MAX_API_URL
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if not value.startswith(("http://", "https://")):
                raise ValueError("ожидается адрес вида https://platform-api2.max.ru")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("ожидается от 5 до 256 символов: латинские буквы, цифры, _ и -")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"файл не найден: {value}")
        return value


class VkSettings(BaseSettings):
    """VK community messages: on when both VK_TOKEN and VK_GROUP_ID are set."""

    model_config = _COMMON

    token: SecretStr | None = Field(default=None, alias="VK_TOKEN")
    group_id: int | None = Field(default=None, gt=0, alias="VK_GROUP_ID", validate_default=True)
    api_url: str = Field(default="https://api.vk.ru", alias="VK_API_URL")
    callback_secret: SecretStr | None = Field(default=None, alias="VK_CALLBACK_SECRET")
    confirmation_code: str | None = Field(default=None, alias="VK_CONFIRMATION_CODE")

    @field_validator("token", "callback_secret", "confirmation_code", "group_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_url")
    @classmethod
    def _vk_url_shape(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("ожидается адрес вида https://api.vk.ru")
        return value

    @field_validator("group_id")
    @classmethod
    def _with_token(cls, value: int | None, info: ValidationInfo) -> int | None:
        if (info.data.get("token") is None) != (value is None):
            raise ValueError("VK_TOKEN и VK_GROUP_ID задаются вместе: укажите оба или ни одного")
        return value

    @property
    def configured(self) -> bool:
        return self.token is not None and self.group_id is not None


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
            raise ValueError("ожидается sqlite+aiosqlite:///путь или postgresql+asyncpg://…")
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

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        level = "WARNING" if level == "WARN" else level
        if level not in LOG_LEVELS:
            raise ValueError(
                "неизвестный уровень, ожидается DEBUG, INFO, WARNING, ERROR или CRITICAL"
            )
        return level

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "неизвестный часовой пояс, ожидается, например, Europe/Moscow"
            ) from exc
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
            if platform not in ("tg", "vk", "max") or not user_id.strip().isdigit():
                raise ValueError("ожидается список вида tg:123456789,vk:1234,max:5678")
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
                raise ValueError("ожидаются дни до срока через запятую, например 7,3,1,0") from None
        if isinstance(value, list | tuple):
            if any(int(v) < 0 for v in value):
                raise ValueError("дни до срока не могут быть отрицательными, например 7,3,1,0")
            return tuple(sorted({int(v) for v in value}, reverse=True))
        return value

    @field_validator("send_time", "quiet_start", "quiet_end", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return _parse_clock(value)
            except ValueError:
                raise ValueError("ожидается время вида 09:00") from None
        return value

    @model_validator(mode="after")
    def _send_time_is_daytime(self) -> ReminderSettings:
        if self.is_quiet(self.send_time):
            raise ValueError(
                f"REMINDER_TIME: {self.send_time:%H:%M} попадает в тихие часы "
                f"{self.quiet_start:%H:%M}–{self.quiet_end:%H:%M}; ожидается дневное время"
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
    # How long a Telegram webhook request waits for its event, so that a one-message reply
    # goes in the HTTP answer (delivered exactly once, bot/handover.py); 0: never.
    answer_wait_s: float = Field(default=10.0, ge=0, le=50, alias="WEBHOOK_ANSWER_WAIT_S")

    @field_validator("base_url")
    @classmethod
    def _base_url_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("ожидается внешний адрес вида https://bot.example.com")
        return value

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("ожидается адрес:порт, например 127.0.0.1:8080")
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


class WorkerSettings(BaseSettings):
    """Several bot processes on one PostgreSQL (and Redis): who runs the jobs, the send rate."""

    model_config = _COMMON

    # Bot processes sharing one token; without Redis each sends at SEND_RATE_PER_S / WORKERS.
    count: int = Field(default=1, ge=1, le=256, alias="WORKERS")
    # The shared send rate (a token bucket per platform token), e.g. redis://127.0.0.1:6379/0.
    redis_url: SecretStr | None = Field(default=None, alias="REDIS_URL")
    # How often a follower tries to become the scheduler leader (and the leader checks itself).
    leader_retry_seconds: float = Field(default=5.0, gt=0, le=300, alias="LEADER_RETRY_SECONDS")

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url_shape(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            if not value.strip().startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("ожидается адрес вида redis://127.0.0.1:6379/0")
            return value.strip()
        return value


class Settings(BaseModel):
    telegram: TelegramSettings
    storage: StorageSettings
    app: AppSettings
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    max: MaxSettings = Field(default_factory=MaxSettings)
    vk: VkSettings = Field(default_factory=VkSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)


# What pydantic's own checks mean, said in Russian; custom validators word their own.
_EXPECTED = {
    "bool_parsing": "ожидается true или false",
    "bool_type": "ожидается true или false",
    "int_parsing": "ожидается целое число",
    "int_from_float": "ожидается целое число",
    "int_type": "ожидается целое число",
    "float_parsing": "ожидается число",
    "float_type": "ожидается число",
    "greater_than_equal": "ожидается число не меньше {ge}",
    "greater_than": "ожидается число больше {gt}",
    "less_than_equal": "ожидается число не больше {le}",
    "less_than": "ожидается число меньше {lt}",
    "time_parsing": "ожидается время вида 09:00",
    "time_type": "ожидается время вида 09:00",
}
_FALLBACK = "недопустимое значение, допустимые описаны в README (раздел «Configuration»)"


def _variable_name(section: type[BaseSettings], loc: tuple) -> str:
    field = section.model_fields.get(str(loc[0])) if loc else None
    return (field.alias if field and field.alias else str(loc[0] if loc else "?")).upper()


def _problem(section: type[BaseSettings], error: dict) -> str:
    """One line: the variable, the value given (unless secret) and what is expected."""
    if error["type"] == "value_error":
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        limits = {
            k: f"{v:g}" if isinstance(v, float) else v for k, v in error.get("ctx", {}).items()
        }
        reason = _EXPECTED.get(error["type"], _FALLBACK).format(**limits)
    if not error["loc"]:  # a check across variables names them itself
        return reason + "."
    name = _variable_name(section, error["loc"])
    given = error.get("input")
    if isinstance(given, str) and name not in SECRET_VARIABLES:
        shown = given if len(given) <= 40 else given[:39] + "…"
        return f"{name}: «{shown}» — {reason}."
    return f"{name}: {reason}."


def load_settings(env_file: str | Path | None = ENV_FILE) -> Settings:
    """Read every section; bad values raise one ConfigError, a line per variable."""
    sections = {}
    problems: list[str] = []
    for key, section in (
        ("telegram", TelegramSettings),
        ("storage", StorageSettings),
        ("app", AppSettings),
        ("reminders", ReminderSettings),
        ("max", MaxSettings),
        ("vk", VkSettings),
        ("webhook", WebhookSettings),
        ("workers", WorkerSettings),
    ):
        try:
            sections[key] = section(_env_file=env_file)  # type: ignore[call-arg]
        except ValidationError as exc:
            problems += [_problem(section, err) for err in exc.errors()]
        except UnicodeDecodeError:
            raise ConfigError(
                f"{env_file}: файл не в кодировке UTF-8. Сохраните его в UTF-8 и запустите снова."
            ) from None
        except OSError as exc:
            raise ConfigError(f"{env_file}: файл не читается ({exc.strerror}).") from None
    if problems:
        raise ConfigError("\n".join(problems))
    return Settings(**sections)
