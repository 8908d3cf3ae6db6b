"""Run outcomes and rollbacks as Slack-compatible webhook messages.

The payload is what Slack's incoming webhooks take (`text`, plus one attachment whose `fields`
hold the details), which Mattermost, Rocket.Chat, Teams' Slack-compatible connectors and plain
HTTP receivers also read. A notification never changes what a command does: a receiver that is
down or refuses the message is retried briefly, then logged and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any

from pipeline.config import NotificationsConfig

# The webhook URL is a secret (whoever has it can post): it may come from the environment only.
WEBHOOK_ENV = "TEXTCLF_WEBHOOK_URL"
_ATTEMPTS = 3
# Slack's attachment colours.
_COLORS = {"success": "good", "failure": "danger", "not_blessed": "warning",
           "rollback": "warning", "promoted": "good"}

logger = logging.getLogger("textclf.notifications")


def notify(settings: NotificationsConfig, event: str, summary: str,
           details: dict[str, Any]) -> bool:
    """Posts `summary` and `details` for `event`; True when the receiver accepted it.

    Args:
      event: one of `pipeline.config.NOTIFICATION_EVENTS`; events not in `settings.events`
        are not sent.
      details: field title -> value, shown as the attachment's fields (in this order).
    """
    url = os.environ.get(WEBHOOK_ENV) or settings.webhook_url
    if not url or event not in settings.events:
        return False
    payload = {
        "text": summary,
        "attachments": [{
            "color": _COLORS[event],
            "fallback": summary,
            "fields": [{"title": title, "value": str(value), "short": len(str(value)) <= 40}
                       for title, value in {"event": event, **details}.items()],
        }],
    }
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    problem = ""
    for attempt in range(_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds):
                return True
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
            if error.code < 500:
                break  # the receiver refuses this message: sending it again will not help
        except (urllib.error.URLError, OSError) as error:
            problem = str(getattr(error, "reason", error))
        if attempt + 1 < _ATTEMPTS:
            time.sleep(0.5 * 2 ** attempt)
    logger.warning("the %s notification was not delivered (%s); the webhook is set by %s or "
                   "notifications.webhook_url", event, problem, WEBHOOK_ENV)
    return False
