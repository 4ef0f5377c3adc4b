"""The distribution installs the requested layout as one package, from a wheel and editable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: two pytest-xdist workers building the checkout itself at once collide in its
    # build/ folder ("File exists").
    source = tmp_path_factory.mktemp("source") / "repo"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (built,) = out.glob("prefect_lipsync-*.whl")
    return built


def test_wheel_maps_flows_tasks_blocks_under_the_package_and_nothing_generic_at_top(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {"flows", "tasks", "blocks", "tests", "bench", "deployments"}.isdisjoint(top_level)
    assert "prefect_lipsync/flows/__init__.py" in names
    assert "prefect_lipsync/tasks/__init__.py" in names
    assert "prefect_lipsync/blocks/__init__.py" in names
    assert "prefect_lipsync/runware/models.py" in names


def test_wheel_declares_the_collection_entry_point_and_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[prefect.collections]\nprefect_lipsync = prefect_lipsync" in text
    assert "prefect-lipsync = prefect_lipsync.cli:main" in text


@pytest.mark.slow
def test_wheel_installed_into_a_fresh_venv_imports_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # The pinned dependencies come from this test's own environment through a plain path entry
    # (no network needed); a plain entry does not run that environment's editable-install hook,
    # so the package itself can only come from the wheel.
    deps = sysconfig.get_paths()["purelib"]
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    (site_packages / "zz_test_dependencies.pth").write_text(deps + "\n")
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import prefect_lipsync, prefect_lipsync.flows, prefect_lipsync.tasks, prefect_lipsync.blocks;"
        "print(prefect_lipsync.__file__)"
    )
    done = subprocess.run(
        [str(python), "-c", code],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert str(venv) in done.stdout, "imported from the checkout instead of the installed wheel"
    files = subprocess.run(
        [str(python), "-m", "pip", "show", "-f", "prefect-lipsync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    listed = [line.strip() for line in files.splitlines() if line.startswith("  ")]
    assert listed and not any(line.split("/")[0] in {"tasks", "flows", "blocks"} for line in listed)
