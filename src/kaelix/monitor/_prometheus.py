"""Prometheus export: a prometheus_client collector over a `Registry`, the text exposition,
and an HTTP endpoint bound to localhost by default.

Counters keep their ``_total`` names, gauges and histograms their base units (seconds,
bytes); a histogram is exported as a summary: ``_count``, ``_sum`` and the quantiles 0.5,
0.9, 0.99 and 0.999 of everything recorded (the exact HdrHistogram percentiles, rather
than buckets fixed in advance). prometheus_client is imported only here, on first use,
with a message naming the ``monitor`` extra when it is missing. Never imports the bench.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Final

from kaelix.monitor._metrics import HistogramValue, MonitorError, Registry

__all__ = ["PrometheusCollector", "PrometheusServer", "exposition", "serve"]

EXTRA: Final = "monitor"
QUANTILES: Final = (0.5, 0.9, 0.99, 0.999)


def _client() -> Any:
    try:
        import prometheus_client
        import prometheus_client.metrics_core
    except ImportError:
        raise MonitorError(
            f'prometheus_client is not installed: pip install "kaelix[{EXTRA}]"'
        ) from None
    return prometheus_client


class PrometheusCollector:
    """A prometheus_client collector (``collect()`` yields metric families) over a kaelix
    `Registry`: register it in a ``prometheus_client.CollectorRegistry`` (or the default
    ``prometheus_client.REGISTRY``) to serve kaelix's metrics beside your own.

    Raises:
        MonitorError: prometheus_client is not installed.
    """

    def __init__(self, registry: Registry) -> None:
        self._client = _client()
        self.registry = registry

    def describe(self) -> list[Any]:
        """Nothing: the metrics are known only when collected (so registering does not
        collect)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The registry's families as prometheus_client metric families."""
        core = self._client.metrics_core
        for family in self.registry.collect():
            labelnames = [k for k, _ in family.series[0].labels] if family.series else []
            if family.kind == "counter":
                metric = core.CounterMetricFamily(family.name, family.help, labels=labelnames)
                for series in family.series:
                    assert not isinstance(series.value, HistogramValue)
                    metric.add_metric([v for _, v in series.labels], series.value)
            elif family.kind == "gauge":
                metric = core.GaugeMetricFamily(family.name, family.help, labels=labelnames)
                for series in family.series:
                    assert not isinstance(series.value, HistogramValue)
                    metric.add_metric([v for _, v in series.labels], series.value)
            else:
                metric = core.SummaryMetricFamily(family.name, family.help, labels=labelnames)
                for series in family.series:
                    value = series.value
                    assert isinstance(value, HistogramValue)
                    values = [v for _, v in series.labels]
                    metric.add_metric(values, value.count, value.sum)
                    for q in QUANTILES:
                        labels = dict(series.labels)
                        labels["quantile"] = f"{q:g}"
                        quantile = value.percentile(q * 100.0) if value.count else float("nan")
                        metric.add_sample(family.name, labels, quantile)
            yield metric


def _collector_registry(registry: Registry) -> Any:
    client = _client()
    target = client.CollectorRegistry(auto_describe=False)
    target.register(PrometheusCollector(registry))
    return target


def exposition(registry: Registry) -> str:
    """The registry in Prometheus's text exposition format."""
    client = _client()
    text: bytes = client.generate_latest(_collector_registry(registry))
    return text.decode("utf-8")


class PrometheusServer:
    """A running exposition endpoint (from `serve`): ``url`` to scrape, ``close()`` to stop
    it (or use it as a context manager)."""

    def __init__(self, server: Any, thread: threading.Thread, addr: str) -> None:
        self._server = server
        self._thread = thread
        self.addr = addr
        self.port: int = int(server.server_port)

    @property
    def url(self) -> str:
        """The metrics URL."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stops serving and frees the port. Harmless twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(5.0)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PrometheusServer {self.url}>"


def serve(registry: Registry, port: int = 0, addr: str = "127.0.0.1") -> PrometheusServer:
    """Serves ``registry`` for Prometheus over HTTP (prometheus_client's server, in a daemon
    thread) on ``addr`` (localhost by default: pass ``"0.0.0.0"`` deliberately to expose it)
    and ``port`` (0: a free one; read ``.port``).

    Raises:
        MonitorError: prometheus_client is not installed.
        OSError: the address cannot be bound.
    """
    client = _client()
    server, thread = client.start_http_server(port, addr, registry=_collector_registry(registry))
    return PrometheusServer(server, thread, addr)
