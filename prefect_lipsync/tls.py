"""One TLS context for every HTTP client the package opens.

Building an `ssl.SSLContext` loads the system's certificates: milliseconds of CPU each time. httpx
builds one per client unless given one, and clients are opened per download, per task call and per
media fetch, so a night's batch paid for it hundreds of times (a tenth of the flow process's CPU in
bench_batch.py's profile). A context is safe to share between clients and threads.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """The process's TLS context: certificate checks on, the same trust store httpx uses."""
    return httpx.create_ssl_context()
