"""A local Runware-compatible server for sync-3: real HTTP, real ffmpeg output, no lip movement.

REST (`POST http://127.0.0.1:PORT/v1`) and the WebSocket (`ws://127.0.0.1:PORT/v1`, the
authentication task first) speak the same task JSON on one port.

from prefect_lipsync.emulator import run_emulator

with run_emulator(latency=0.5, seed=1) as base_url:   # "http://127.0.0.1:PORT/v1"
    ...                                              # point a client at base_url
    base_url.stats()                                 # the emulator's counters
"""

from prefect_lipsync.emulator.config import EmulatorConfig
from prefect_lipsync.emulator.jobs import EMULATOR_NOTE
from prefect_lipsync.emulator.server import EmulatorURL, run_emulator

__all__ = ["EMULATOR_NOTE", "EmulatorConfig", "EmulatorURL", "run_emulator"]
