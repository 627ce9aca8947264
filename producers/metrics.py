"""Prometheus metrics of one gateway, in a registry of its own (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class GatewayMetrics:
    """Requests, bytes, latencies and rejections by reason."""

    def __init__(self) -> None:
        """Register every metric in a fresh registry."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "photostream_gateway_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "photostream_gateway_request_seconds",
            "Time from request start to response, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.bytes_received = Counter(
            "photostream_gateway_upload_bytes",
            "Bytes of files stored as originals",
            registry=self.registry,
        )
        self.files = Counter(
            "photostream_gateway_files",
            "Files received, by outcome (accepted, duplicate, rejected)",
            ["outcome"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "photostream_gateway_rejections",
            "Files or requests rejected, by reason",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
