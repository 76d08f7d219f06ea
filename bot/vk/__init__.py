"""VK community messages: the channel, its settings-driven factory, its file fetcher."""

from __future__ import annotations

from bot.vk.channel import VkChannel, VkFileFetcher

__all__ = ["VkChannel", "VkFileFetcher", "create_channel"]


def create_channel(settings, *, ts_path=None) -> VkChannel:
    """A channel from :class:`bot.config.VkSettings` (``settings.vk``)."""
    assert settings.token is not None and settings.group_id is not None
    return VkChannel(
        settings.token.get_secret_value(),
        settings.group_id,
        api_url=settings.api_url,
        callback_secret=settings.callback_secret.get_secret_value()
        if settings.callback_secret
        else None,
        confirmation_code=settings.confirmation_code,
        ts_path=ts_path,
    )
