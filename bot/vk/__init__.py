"""VK community messages: the channel, its settings-driven factory, its file fetcher."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.vk.channel import VkChannel, VkFileFetcher

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["TS_FILE", "VkChannel", "VkFileFetcher", "create_channel"]

TS_FILE = "vk_longpoll.ts"  # under DATA_DIR: the last long-poll ts whose batch was stored


def create_channel(settings: Settings) -> VkChannel:
    """The channel for ``settings.vk`` (which must be configured)."""
    vk = settings.vk
    if vk.token is None or vk.group_id is None:
        raise ValueError("VK is not configured: set VK_TOKEN and VK_GROUP_ID")
    return VkChannel(
        vk.token.get_secret_value(),
        vk.group_id,
        api_url=vk.api_url,
        callback_secret=vk.callback_secret.get_secret_value() if vk.callback_secret else None,
        confirmation_code=vk.confirmation_code,
        ts_path=settings.storage.data_dir / TS_FILE,
    )
