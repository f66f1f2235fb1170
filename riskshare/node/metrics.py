"""Prometheus metrics of one node (``GET /metrics``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from .storage.models import AuditHead, Job

if TYPE_CHECKING:
    from .service import NodeService


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("riskshare_http_requests", "HTTP requests served", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("riskshare_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.connections = Counter("riskshare_connections", "Accepted connections by kind (https, link)", ["kind"],
                                   registry=self.registry)
        self.refused = Counter("riskshare_refused_connections", "Connections refused during the TLS handshake",
                               registry=self.registry)

    def attach(self, node: "NodeService") -> None:
        self.registry.register(_StateCollector(node))


class _StateCollector:
    """Values read at scrape time: jobs by state, running attempts, link traffic, audit length."""

    def __init__(self, node: "NodeService") -> None:
        self.node = node

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("riskshare_jobs", "Jobs on this node by state", labels=["state"])
        with self.node.ctx.db.session() as s:
            for state, count in s.execute(select(Job.state, func.count()).group_by(Job.state)):
                jobs.add_metric([state], count)
            head = s.get(AuditHead, 1)
        yield jobs
        yield GaugeMetricFamily("riskshare_job_attempts_running", "Job attempts running now",
                                value=self.node.jobs.running_attempts())
        yield GaugeMetricFamily("riskshare_audit_records", "Records in the audit chain", value=head.seq if head else 0)
        traffic = self.node.link.stats.total()
        for key in ("bytes_sent", "bytes_received", "messages_sent", "messages_received"):
            yield GaugeMetricFamily(f"riskshare_link_{key}", f"Link {key.replace('_', ' ')} since start",
                                    value=traffic[key])
