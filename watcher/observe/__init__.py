"""Seeing what the daemon does: the database's view (snapshot), /healthz and /metrics over HTTP, JSON logs.

reader.py    a read-only engine: reports never take the write lock
snapshot.py  feeds, entries, hits, alerts as one read-only view (status, metrics, health share it)
health.py    is the daemon healthy? a pure decision from the scheduler state and the last polls
metrics.py   Prometheus metrics: in-process poll/fetch instruments and gauges read from the database
http.py      a tiny HTTP server on the daemon's event loop, serving /healthz and /metrics
service.py   wires the above into ``watcher run --http``
logs.py      JSON-lines log formatter (``--log-format json``)
"""
