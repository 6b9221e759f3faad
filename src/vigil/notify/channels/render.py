"""Human-readable summaries of a security event for email and chat channels."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import orjson

from vigil.events.envelope import SecurityEvent

TITLE_KEYS = ("title", "summary", "rule_title", "name", "message")
#: Detail keys shown first, in this order, when present.
LEADING_KEYS = (
    "alert_id",
    "incident_id",
    "rule_id",
    "rule",
    "status",
    "host",
    "user",
    "entity",
    "count",
    "tags",
)
MAX_FIELDS = 20
MAX_VALUE_CHARS = 300

SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}


@dataclass(frozen=True, slots=True)
class Summary:
    title: str
    severity: str
    event_type: str
    event_id: str
    timestamp: str
    tenant_id: str | None
    fields: list[tuple[str, str]]
    link: str | None


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    else:
        text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def summarise(event: SecurityEvent) -> Summary:
    details = event.details
    title = next(
        (details[k].strip() for k in TITLE_KEYS if isinstance(details.get(k), str) and details[k]),
        event.event_type.replace("_", " ").capitalize(),
    )
    ordered = [k for k in LEADING_KEYS if k in details]
    ordered += sorted(k for k in details if k not in LEADING_KEYS and k not in TITLE_KEYS)
    fields = [
        (key, _value_text(details[key]))
        for key in ordered[:MAX_FIELDS]
        if details[key] is not None and key not in ("url", "channels")
    ]
    url = details.get("url")
    link = url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
    return Summary(
        title=title[:200],
        severity=event.severity.value,
        event_type=event.event_type,
        event_id=str(event.event_id),
        timestamp=event.timestamp.isoformat(),
        tenant_id=event.metadata.tenant_id,
        fields=fields,
        link=link,
    )


def subject(summary: Summary, prefix: str = "[Vigil]") -> str:
    text = f"{prefix} {summary.severity.upper()} {summary.title}".strip()
    return " ".join(text.split())[:250]  # no header folding tricks through newlines


def plain_text(summary: Summary) -> str:
    lines = [
        summary.title,
        "",
        f"Severity:   {summary.severity}",
        f"Event type: {summary.event_type}",
        f"Time:       {summary.timestamp}",
        f"Event id:   {summary.event_id}",
    ]
    if summary.tenant_id:
        lines.append(f"Tenant:     {summary.tenant_id}")
    if summary.fields:
        lines += ["", "Details:"]
        lines += [f"  {key}: {value}" for key, value in summary.fields]
    if summary.link:
        lines += ["", summary.link]
    lines += ["", "-- ", "Sent by Vigil. Manage notifications under /v1/notifications."]
    return "\n".join(lines) + "\n"


def html_body(summary: Summary) -> str:
    e = html.escape
    rows = [
        ("Severity", summary.severity),
        ("Event type", summary.event_type),
        ("Time", summary.timestamp),
        ("Event id", summary.event_id),
    ]
    if summary.tenant_id:
        rows.append(("Tenant", summary.tenant_id))
    rows += summary.fields
    table = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(k)}</th>'
        f'<td style="font-family:monospace">{e(v)}</td></tr>'
        for k, v in rows
    )
    link = f'<p><a href="{e(summary.link)}">{e(summary.link)}</a></p>' if summary.link else ""
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        f"<h2>{SEVERITY_MARK.get(summary.severity, '')} {e(summary.title)}</h2>"
        f"<table>{table}</table>{link}"
        '<p style="color:#666;font-size:small">Sent by Vigil.</p></body></html>'
    )


def _mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(summary: Summary, *, username: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (fallback, and what Mattermost and Rocket.Chat
    show) plus Block Kit ``blocks``."""
    mark = SEVERITY_MARK.get(summary.severity, "")
    text = f"{mark} [{summary.severity.upper()}] {_mrkdwn(summary.title)} ({summary.event_type})"
    facts = [
        f"*Severity:* {summary.severity}",
        f"*Type:* {_mrkdwn(summary.event_type)}",
        f"*Time:* {summary.timestamp}",
    ]
    facts += [f"*{_mrkdwn(k)}:* {_mrkdwn(v)}" for k, v in summary.fields[:7]]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{mark} {summary.title}"[:150]},
        },
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f[:2000]} for f in facts[:10]],
        },
    ]
    rest = summary.fields[7:]
    if rest:
        body = "\n".join(f"*{_mrkdwn(k)}:* {_mrkdwn(v)}" for k, v in rest)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}})
    if summary.link:
        link = f"<{_mrkdwn(summary.link).replace('|', '%7C')}|Open>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Vigil event `{summary.event_id}`"}],
        }
    )
    payload: dict[str, Any] = {"text": text, "blocks": blocks}
    if username:
        payload["username"] = username
    return payload
