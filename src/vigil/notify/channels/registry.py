"""What each channel type accepts: its public config model and its write-only secrets."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel

from vigil.notify.channels.email import EmailConfig, EmailSecretsInput
from vigil.notify.channels.netguard import AddressPolicy
from vigil.notify.channels.slack import SlackConfig, SlackSecretsInput
from vigil.notify.channels.webhook import WebhookConfig, WebhookSecretsInput
from vigil.notify.models import ChannelType


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    channel_type: ChannelType
    config_model: type[BaseModel]
    secrets_model: type[BaseModel]
    #: Secrets that must always be set.
    required_secrets: frozenset[str] = frozenset()
    #: Secrets managed by dedicated endpoints, not by PATCH.
    managed_secrets: frozenset[str] = frozenset()


SPECS: dict[ChannelType, ChannelSpec] = {
    ChannelType.WEBHOOK: ChannelSpec(
        ChannelType.WEBHOOK,
        WebhookConfig,
        WebhookSecretsInput,
        required_secrets=frozenset({"signing_secret"}),
        managed_secrets=frozenset({"signing_secret"}),
    ),
    ChannelType.EMAIL: ChannelSpec(ChannelType.EMAIL, EmailConfig, EmailSecretsInput),
    ChannelType.SLACK: ChannelSpec(
        ChannelType.SLACK, SlackConfig, SlackSecretsInput, required_secrets=frozenset({"url"})
    ),
}

#: Only the always-refused destinations: checked when a channel is saved so an obviously
#: forbidden target fails with 422 at once (the full policy applies when sending).
_SAVE_POLICY = AddressPolicy(allow_private=True)


def literal_refusal(url_or_host: str) -> str | None:
    """Why a URL's (or a bare host's) literal IP address is never contacted, if it is."""
    host = urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host
    return _SAVE_POLICY.check_literal(host) if host else None
