"""One thin adapter per model API: wire format in, ``Table`` to the data plane, wire format out."""
