"""The MAX messenger channel: a thin aiohttp client over the official Bot API."""

from bot.max.api import MaxApi, MaxApiError, TokenBucket
from bot.max.channel import MaxChannel, MaxFileFetcher, deep_link

__all__ = ["MaxApi", "MaxApiError", "MaxChannel", "MaxFileFetcher", "TokenBucket", "deep_link"]
