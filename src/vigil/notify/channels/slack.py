"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): ``text`` + ``blocks``.

Config: ``username`` (optional display name override). Secrets: ``url``: an incoming-webhook URL
carries its own credential, so it is write-only; the API shows only its host.
"""

from __future__ import annotations

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigil.notify.channels import http
from vigil.notify.channels.base import OutgoingMessage, SendResult, rejected
from vigil.notify.channels.netguard import AddressPolicy
from vigil.notify.channels.render import slack_payload, summarise
from vigil.notify.channels.webhook import USER_AGENT, check_http_url
from vigil.notify.models import ChannelType


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, max_length=80)


class SlackSecretsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048, description="Incoming-webhook URL.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class SlackNotifier:
    channel_type = ChannelType.SLACK

    def __init__(self, client: httpx.Client, policy: AddressPolicy, *, max_redirects: int = 3):
        self.client = client
        self.policy = policy
        self.max_redirects = max_redirects

    def send(self, message: OutgoingMessage) -> SendResult:
        url = message.secrets.get("url")
        if not isinstance(url, str):
            return rejected("slack channel has no webhook url")
        username = message.config.get("username")
        payload = slack_payload(
            summarise(message.event), username=username if isinstance(username, str) else None
        )
        return http.post(
            self.client,
            self.policy,
            url,
            content=orjson.dumps(payload),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            max_redirects=self.max_redirects,
        )
