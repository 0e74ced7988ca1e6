"""Prediction and feedback records: shaped here, buffered on disk, delivered at least once to a sink.

Legion's FluentD role. The gateway (or a model server) hands each prediction to a ``PredictionLog``; it is
appended, as it is (``entries``), to a bounded on-disk buffer (``buffer.DiskBuffer``) without waiting for anything,
and a shipper (``shipper.Shipper``) makes the records (``records``), delivers them to the configured sink
(``sinks``: a local directory in Legion's layout by default) and moves its cursor only after the sink has taken
them. A crash loses nothing the buffer had
written; a crash between delivery and the cursor's move delivers some records twice (at least once, never lost).

What does not belong here: HTTP (the gateway owns the routes), joining feedback to predictions and quality metrics
(the feedback store, which reads what the sinks wrote).
"""
