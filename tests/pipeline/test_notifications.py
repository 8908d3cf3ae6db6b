"""Webhook notifications against a real HTTP receiver on 127.0.0.1: payloads, retries, failures."""

import time

import pytest

from pipeline.config import NotificationsConfig
from pipeline.notifications import WEBHOOK_ENV, notify
from tests.webhook_receiver import WebhookReceiver, fields


@pytest.fixture
def receiver():
    webhook = WebhookReceiver()
    yield webhook
    webhook.close()


def test_the_payload_is_slack_shaped_with_the_details_as_fields(receiver):
    settings = NotificationsConfig(webhook_url=receiver.url)

    assert notify(settings, "success", "textclf reviews: pushed as version 7",
                  {"pipeline": "reviews", "eval accuracy": "0.9913"})

    [payload] = receiver.payloads
    assert payload["text"] == "textclf reviews: pushed as version 7"
    attachment = payload["attachments"][0]
    assert attachment["color"] == "good" and attachment["fallback"] == payload["text"]
    assert fields(payload) == {"event": "success", "pipeline": "reviews",
                               "eval accuracy": "0.9913"}


def test_the_environment_variable_overrides_the_config_and_events_filter(receiver, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    settings = NotificationsConfig(webhook_url="http://127.0.0.1:9/not-this-one",
                                   events=["failure"])

    assert not notify(settings, "success", "not sent", {})
    assert notify(settings, "failure", "sent", {"error": "boom"})
    assert receiver.events() == ["failure"]


def test_server_errors_are_retried_and_client_errors_are_not(receiver):
    settings = NotificationsConfig(webhook_url=receiver.url)
    receiver.statuses = [503, 502]
    assert notify(settings, "rollback", "third time lucky", {})
    assert len(receiver.payloads) == 3

    receiver.payloads.clear()
    receiver.statuses = [404]
    assert not notify(settings, "rollback", "refused", {})
    assert len(receiver.payloads) == 1


def test_an_unreachable_receiver_is_logged_not_raised(caplog):
    settings = NotificationsConfig(webhook_url="http://127.0.0.1:9/hook", timeout_seconds=1)
    started = time.monotonic()
    assert not notify(settings, "failure", "nobody listens", {})
    assert time.monotonic() - started < 10
    assert "was not delivered" in caplog.text and WEBHOOK_ENV in caplog.text
