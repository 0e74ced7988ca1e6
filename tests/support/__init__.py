"""Helpers shared by the test suites: running real servers on loopback and waiting for them."""
