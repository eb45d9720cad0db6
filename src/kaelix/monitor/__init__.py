"""kaelix.monitor: metrics, a real-time sampler, alerts, dashboards and Prometheus export.

This module only re-exports; see docs/monitor.md. Nothing outside this package imports it
(the layers of DESIGN.md), and prometheus_client and rich are imported only where used.
"""

from kaelix.monitor._alerts import (
    Alert,
    AlertHandler,
    AlertRule,
    AlertState,
    default_stream_rules,
    log_alert,
    logging_handler,
)
from kaelix.monitor._dashboard import dashboard, render
from kaelix.monitor._metrics import (
    LATENCY_METRIC,
    STREAM_METRICS,
    Collector,
    Counter,
    CounterFamily,
    FamilySnapshot,
    Gauge,
    GaugeFamily,
    Histogram,
    HistogramFamily,
    HistogramValue,
    MonitorError,
    Registry,
    SeriesSnapshot,
    StreamMetrics,
)
from kaelix.monitor._prometheus import PrometheusCollector, PrometheusServer, exposition, serve
from kaelix.monitor._report import report_html
from kaelix.monitor._sampler import Monitor, SeriesKey

__all__ = [
    "LATENCY_METRIC",
    "STREAM_METRICS",
    "Alert",
    "AlertHandler",
    "AlertRule",
    "AlertState",
    "Collector",
    "Counter",
    "CounterFamily",
    "FamilySnapshot",
    "Gauge",
    "GaugeFamily",
    "Histogram",
    "HistogramFamily",
    "HistogramValue",
    "Monitor",
    "MonitorError",
    "PrometheusCollector",
    "PrometheusServer",
    "Registry",
    "SeriesKey",
    "SeriesSnapshot",
    "StreamMetrics",
    "dashboard",
    "default_stream_rules",
    "exposition",
    "log_alert",
    "logging_handler",
    "render",
    "report_html",
    "serve",
]
