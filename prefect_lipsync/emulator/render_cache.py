"""The emulator's render cache: a rendering kept by what made it, given again for the same inputs and
command (`media.output_cache`).

Off by default. `PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE=DIR` in the emulator's environment turns it on:
every emulator sharing DIR (processes and runs alike) renders a given request once. Unlike cheap
outputs, nothing differs from a fresh rendering but the time it takes. The test suite sets it for its
run: dozens of tests render the same demo, each on its own emulator. A hit is a hard link: a rendering
is only ever read (served for download), never edited in place.
"""

from __future__ import annotations

from prefect_lipsync.media.output_cache import OutputCache

ENV = "PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE"
RENDER_CACHE = OutputCache(ENV, share_files=True)
