"""Configuration from the environment and `.env`, one settings class per section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
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


class Settings(BaseModel):
    telegram: TelegramSettings
    storage: StorageSettings
    app: AppSettings


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
    ):
        try:
            sections[key] = section(_env_file=env_file)  # type: ignore[call-arg]
        except ValidationError as exc:
            problems = "; ".join(
                f"{_variable_name(section, err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Invalid configuration — {problems}") from None
    return Settings(**sections)
