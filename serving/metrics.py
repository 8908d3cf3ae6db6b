"""The server's Prometheus metrics (prometheus_client), named by Prometheus' conventions.

One registry per server rather than the library's global one: KServe registers its own
request histograms there, which stay at zero here because its request handlers are bypassed
(`serving/protocol.py`), and two servers in one process would count into each other.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector,
                               ProcessCollector, exposition)
from starlette.requests import Request
from starlette.responses import Response

# Seconds: a one-text call on a small model takes milliseconds, a 64-text MiniLM call seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Every metric the server exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "textclf_requests", "Prediction requests answered, by outcome.",
            ["model", "version", "route", "protocol", "status"], registry=self.registry)
        self.latency = Histogram(
            "textclf_request_duration_seconds",
            "Prediction request latency, from routing to the answer, by version.",
            ["model", "version"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.refused_requests = Counter(
            "textclf_refused_requests", "Requests refused at the edge, before any route.",
            ["status"], registry=self.registry)
        self.batch_size = Histogram(
            "textclf_batch_size_texts", "Texts in one model call.", buckets=_BATCH_BUCKETS,
            registry=self.registry)
        self.queue_depth = Gauge(
            "textclf_batch_queue_depth", "Requests waiting for a model call.",
            registry=self.registry)
        self.loaded_versions = Gauge(
            "textclf_loaded_versions", "Model versions loaded and answering.", ["model"],
            registry=self.registry)
        self.served_version = Gauge(
            "textclf_served_version", "The stable version's number (0: none).",
            ["model"], registry=self.registry)
        self.refused_versions = Counter(
            "textclf_refused_versions", "Versions the server refused to serve.", ["model"],
            registry=self.registry)
        self.rollout_step = Gauge(
            "textclf_rollout_step", "The running rollout's step, from 1 (0: no rollout).",
            ["model"], registry=self.registry)
        self.rollout_share = Gauge(
            "textclf_rollout_candidate_share_percent",
            "The share of requests the rollout's candidate answers (canary) or is sent (shadow).",
            ["model"], registry=self.registry)
        self.automatic_rollbacks = Counter(
            "textclf_automatic_rollbacks", "Candidates a rollout rolled back by itself.",
            ["model"], registry=self.registry)
        self.promotions = Counter(
            "textclf_rollout_promotions", "Candidates a rollout made the stable version.",
            ["model"], registry=self.registry)
        self.audit_lost_records = Gauge(
            "textclf_audit_lost_records", "Audit records that could not be written.",
            registry=self.registry)

    def watch(self, model_name: str, *, served_version: Callable[[], int],
              loaded_versions: Callable[[], int], queue_depth: Callable[[], int],
              rollout_step: Callable[[], int], rollout_share: Callable[[], float],
              audit_lost: Callable[[], int]) -> None:
        """Gauges read at scrape time from the objects that hold the values."""
        self.served_version.labels(model_name).set_function(served_version)
        self.loaded_versions.labels(model_name).set_function(loaded_versions)
        self.queue_depth.set_function(queue_depth)
        self.rollout_step.labels(model_name).set_function(rollout_step)
        self.rollout_share.labels(model_name).set_function(rollout_share)
        self.audit_lost_records.set_function(audit_lost)

    async def handler(self, request: Request) -> Response:
        """`GET /metrics`, in the text format the scraper asks for."""
        encoder, content_type = exposition.choose_encoder(request.headers.get("accept"))
        return Response(content=encoder(self.registry), headers={"content-type": content_type})
