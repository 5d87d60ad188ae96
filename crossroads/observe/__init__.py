"""What the gateway reports about itself, derived from finished traces off the request path.

``metrics`` aggregates traces into counters and histograms in plain Python (cheap enough for
every request); ``workers`` shares them between worker processes; ``exposition`` renders them
for Prometheus with prometheus-client; ``context`` and ``otel`` turn traces into
OpenTelemetry spans (the ``otel`` extra, imported only when configured).
"""
