"""Notification channel types: webhook, email (SMTP), Slack-compatible incoming webhooks.

Each type implements :class:`vigil.notify.channels.base.Notifier`; :mod:`.memory` is the test
double.
"""
