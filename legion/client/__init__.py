"""The typed HTTP client of the management API: what the CLI (and later Airflow operators) talk through.

It never imports a service package; it speaks HTTP and turns problem documents back into Legion's error tree.
"""

from legion.client.client import LegionClient, error_from

__all__ = ["LegionClient", "error_from"]
