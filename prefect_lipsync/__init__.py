"""prefect-lipsync: sync.'s sync-3 lip-sync model on the Runware API, orchestrated with Prefect.

This module is the `prefect.collections` entry point, imported by every Prefect server and
worker: it stays light (version and block re-exports only).
"""

from prefect_lipsync._version import __version__

__all__ = ["__version__"]
