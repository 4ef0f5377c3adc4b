"""prefect-lipsync: sync.'s sync-3 lip-sync model on the Runware API, orchestrated with Prefect.

This module is the `prefect.collections` entry point, imported by every Prefect server and
worker: it stays light. The blocks are re-exported lazily, so `import prefect_lipsync.runware`
(the core) never imports Prefect, while `prefect block register -m prefect_lipsync` and the
server's collection loader see every block.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect_lipsync._version import __version__

__all__ = ["LipsyncSettings", "RunwareCredentials", "__version__"]

_BLOCKS = {"RunwareCredentials", "LipsyncSettings"}


def __getattr__(name: str) -> Any:
    if name in _BLOCKS:
        from prefect_lipsync import blocks

        return getattr(blocks, name)
    raise AttributeError(f"module 'prefect_lipsync' has no attribute {name!r}")


# Prefect imports this package as a collection (server start, worker start, block lookup) and
# `prefect block register -m prefect_lipsync` inspects its attributes: in those cases Prefect is
# already loaded, so import the blocks eagerly for them to register.
if "prefect" in sys.modules:
    from prefect_lipsync import blocks as _blocks  # noqa: F401
    from prefect_lipsync.blocks import LipsyncSettings, RunwareCredentials
