"""Prefect blocks of prefect-lipsync: credentials and shared settings."""

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings

__all__ = ["LipsyncSettings", "RunwareCredentials"]
