"""Shared test settings. Each area keeps its own fixtures in tests/<area>/conftest.py.

The suite runs in parallel (`make test`: pytest-xdist, `-n 4 --dist loadgroup`), so a test must not
depend on another's leftovers nor on running alone. How a test gets what is its own:
- folders: `tmp_path` (per test) or `tmp_path_factory` (per session, which is per xdist worker);
- ports: bind to port 0 or `infra.free_port()`; never a fixed port;
- Prefect home and server: tests under tests/prefect talk to the run's one test server
  (`infra.run_test_server`, shared by all workers; tests/prefect/conftest.py), each worker with its
  own PREFECT_HOME; a test that needs a clean server or separate processes starts its own
  (`prefect_operator.running_server(tmp_path)` or `infra.PrefectServer(tmp_path / ...)`), each with its
  own PREFECT_HOME under tmp_path;
- caches: the `cache_dir` fixture below; the session default is a fresh temp dir per worker;
- on a shared server: names with a uuid where a name is global (work pools, blocks, buckets), and a
  test reads its own runs (by flow run id, flow name or tag), never "the latest" or "all".
Tests that must share one thing across the run can say so with `@pytest.mark.xdist_group("name")`:
`--dist loadgroup` runs a group on one worker.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make tests/infra.py importable

# Prefect must never phone home or print telemetry errors from tests.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# One folder for the whole run, shared by the xdist workers (they inherit it) and removed at its end:
# the migrated Prefect database every test server starts on is made there once
# (infra.migrated_prefect_db), and each process's probe and audio cache lives there.
_RUN_DIR_MADE_HERE = "PREFECT_LIPSYNC_TEST_RUN_DIR" not in os.environ
if _RUN_DIR_MADE_HERE:
    os.environ["PREFECT_LIPSYNC_TEST_RUN_DIR"] = tempfile.mkdtemp(prefix="prefect-lipsync-test-run-")
    # Every emulator of the run (in a test's process or its own) renders a given request once: dozens of
    # tests render the same demo. A hit is the file that same command made from the same bytes.
    os.environ.setdefault(
        "PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE",
        os.path.join(os.environ["PREFECT_LIPSYNC_TEST_RUN_DIR"], "renders"),
    )
    # Likewise synthetic media (media.synth): hundreds of tests make the same few cards and tones; each
    # gets its own copy of the file that command made.
    os.environ.setdefault(
        "PREFECT_LIPSYNC_SYNTH_CACHE", os.path.join(os.environ["PREFECT_LIPSYNC_TEST_RUN_DIR"], "synth")
    )
# Probe and audio caches of a test run stay out of the user's real cache. xdist workers inherit the
# controller's environment, so each worker makes its own rather than share the controller's.
if "PREFECT_LIPSYNC_CACHE_DIR" not in os.environ or os.environ.get("PREFECT_LIPSYNC_TEST_CACHE_MADE"):
    os.environ["PREFECT_LIPSYNC_CACHE_DIR"] = tempfile.mkdtemp(
        prefix="cache-", dir=os.environ["PREFECT_LIPSYNC_TEST_RUN_DIR"]
    )
    os.environ["PREFECT_LIPSYNC_TEST_CACHE_MADE"] = "1"


# The longest tests (minutes each under xdist on 2 cores, measured with --durations), longest first.
# They start before everything else, so none of them starts late and sets the wall time on its own.
# A new minutes-long test belongs here.
LONGEST_FIRST = (
    "tests/storage/test_storage_fanout.py::test_a_worker_killed_mid_batch",
    "tests/prefect/test_prefect_batch_scale.py::test_a_batch_of_100_jobs",
    "tests/storage/test_storage_fanout.py::test_a_batch_fanned_out_per_manifest",
    "tests/storage/test_storage_fanout.py::test_a_dozen_manifests_in_chunks",
    "tests/pipeline/test_pipeline_field_media.py::",
    "tests/test_readme.py::test_python_block_runs_as_written",
    "tests/prefect/test_prefect_flows.py::test_batch_of_five_manifests_under_faults",
    "tests/composition/",
    "tests/pipeline/test_cli_localization_media.py::",
    "tests/prefect/test_prefect_busy_api.py::",
)


def run_order(item: pytest.Item) -> tuple[int, int]:
    """The longest known tests first (in LONGEST_FIRST's order), then the other `slow` ones, then the rest."""
    for rank, prefix in enumerate(LONGEST_FIRST):
        if item.nodeid.startswith(prefix):
            return (0, rank)
    return (1 if item.get_closest_marker("slow") else 2, 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first (stable order otherwise); under xdist each `xdist_group` one unit of work, and the
    first wave of units one per worker, each with a quick test queued behind it.

    xdist (`--dist loadgroup`) starts each worker with two units of work, and a worker runs its second
    only after its first: right after the first wave comes a quick test from the end of the list, never a
    second long one (two long ones in a row on one worker set the wall time). Every xdist worker orders
    its collection the same way, and the controller schedules in that order: `make test` passes
    --no-loadscope-reorder so that xdist keeps it rather than putting multi-test groups first."""
    items.sort(key=run_order)
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        name_xdist_groups(items)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in each xdist worker
    if workers < 2 or len(items) < 4 * workers:
        return
    end = first_wave_end(items, workers)
    first_wave, rest = items[:end], items[end:]
    queued_behind = rest[-workers:]
    items[:] = first_wave + queued_behind + rest[:-workers]


def first_wave_end(items: list[pytest.Item], workers: int) -> int:
    """How many of `items` make up their first `workers` units of work (a group is one unit)."""
    units: list[str] = []
    for index, item in enumerate(items):
        unit = item.nodeid.rpartition("@")[2] if "@" in item.nodeid else item.nodeid
        if unit not in units:
            if len(units) == workers:
                return index
            units.append(unit)
    return len(items)


def name_xdist_groups(items: list[pytest.Item]) -> None:
    """What pytest-xdist 3.8's worker means to do for `--dist loadgroup`: "<nodeid>@<group>", which the
    scheduler keeps on one worker. Its hook sets `item._nodeid`, which pytest 9 no longer reads (a node's
    id is `item._id`), so every `xdist_group` mark was ignored and grouped tests ran on different workers
    (each starting what the group meant to share). A nodeid already suffixed is left alone."""
    from _pytest.nodeid import coerce_node_id

    for item in items:
        marks = item.iter_markers("xdist_group")
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The process that made the run's shared folder stops the run's test server and removes the folder
    (the controller, under xdist)."""
    if _RUN_DIR_MADE_HERE:
        from infra import stop_run_test_server

        stop_run_test_server()
        shutil.rmtree(os.environ["PREFECT_LIPSYNC_TEST_RUN_DIR"], ignore_errors=True)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own cache folder, so journals and uploads of one test never serve another."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(folder))
    return folder
