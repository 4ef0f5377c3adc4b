"""Kept for imports and deployments of earlier releases: every flow now has a module of its own
(`video`, `manifest`, `batch`, `review`, `publish`); `prefect_lipsync.flows` exports them all."""

from prefect_lipsync.flows import *  # noqa: F403
from prefect_lipsync.flows import __all__  # noqa: F401
