"""Media as localization teams receive it, through the commands a person types: probe, plan, run, check.

Each kind of source is made with ffmpeg (and its dub with espeak-ng): a phone clip with dropped
frames, a clip at 24 then 30 fps, a phone video stored turned with a 90 degree display matrix, a
broadcast master whose timecode starts at 01:00:00:00, and a 29.97 fps clip timed in drop-frame
timecode. `run` uses the in-process emulator (no API key), a Prefect home and a probe cache of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from infra import seed_prefect_home

from prefect_lipsync.cli import main
from prefect_lipsync.media import synth
from prefect_lipsync.media.probe import probe

CLI = Path(sys.executable).with_name("prefect-lipsync")
SIZE = (320, 180)
FACE = list(synth.face_box(*SIZE))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def plan_json(capsys: pytest.CaptureFixture[str], manifest: Path, tmp_path: Path) -> dict[str, Any]:
    code, out, err = cli(capsys, "plan", str(manifest), "--json", "--audio-ops-dir", str(tmp_path / "ops"))
    assert code == 0, err
    plan: dict[str, Any] = json.loads(out)
    (tmp_path / "plan.json").write_text(out)
    return plan


def run(manifest: Path, tmp_path: Path) -> dict[str, Any]:
    """`prefect-lipsync run` as a user's shell runs it: no Prefect profile, no Runware key (the emulator)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("PREFECT_") and not k.startswith("PREFECT_LIPSYNC_"))
        and k not in {"RUNWARE_API_KEY", "RUNWARE_BASE_URL"}
    }
    env |= {
        "PREFECT_HOME": str(seed_prefect_home(tmp_path / "prefect-home")),  # a migrated temporary server
        "PREFECT_LIPSYNC_CACHE_DIR": str(tmp_path / "cache"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    done = subprocess.run(
        [str(CLI), "run", str(manifest), "--out", str(tmp_path / "out")],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    [result] = list((tmp_path / "out").glob("*/result.json"))
    outcome: dict[str, Any] = json.loads(result.read_text())
    return outcome


def check(capsys: pytest.CaptureFixture[str], output: str, source: Path, tmp_path: Path) -> dict[str, Any]:
    code, out, err = cli(
        capsys,
        "check",
        output,
        "--source",
        str(source),
        "--plan",
        str(tmp_path / "plan.json"),
        "--emulator",
        "--json",
    )
    report: dict[str, Any] = json.loads(out)
    assert code == 0, (err, [c for c in report["checks"] if c["status"] == "fail"])
    return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.fixture(autouse=True)
def own_cache(cache_dir: Path) -> Path:
    """probe and plan (in this process) read and write this test's own probe cache."""
    return cache_dir


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_phone_clip_with_dropped_frames_keeps_its_last_line_whole_from_plan_to_checked_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 10 s at a nominal 30 fps with 3 of every 20 frames missing: 255 frames, which frame count /
    # nominal rate would take for 8.5 s (and cut the line at 8.0-9.6 s to 8.0-8.5 s).
    clip = synth.make_dropped_frames_clip(tmp_path / "phone.mp4", duration=10.0, fps="30", size=SIZE)
    synth.speak("Hola y bienvenidos.", tmp_path / "es" / "l1.wav", voice="es")
    synth.speak("Gracias por mirar este video.", tmp_path / "es" / "l2.wav", voice="es")
    last_audio = probe(tmp_path / "es" / "l2.wav", cache=None).duration
    assert last_audio < 2.0  # espeak-ng's length: it fits between 8.0 s and the video's end

    code, out, _ = cli(capsys, "probe", "--json", str(clip))
    video = json.loads(out)[0]["video"]
    assert code == 0 and video["variable_frame_rate"] is True
    assert (video["frame_count"], video["duration"], video["fps"]) == (255, 10.0, "30/1")

    manifest = write(
        tmp_path / "manifest.yaml",
        f"""version: 1
video: phone.mp4
name: dropped
speakers:
  host: {{box: {FACE}}}
languages:
  es:
    lines:
      - {{id: l1, start: 1.0, end: 2.6, audio: es/l1.wav}}
      - {{id: l2, start: 8.0, end: 9.6, audio: es/l2.wav}}
""",
    )
    [job] = plan_json(capsys, manifest, tmp_path)["jobs"]
    first, last = job["request"]["settings"]["segments"]
    assert first["endTime"] <= last["startTime"] and last["startTime"] == 8.0
    assert last["endTime"] - last["startTime"] >= last["audioEndTime"] - last["audioStartTime"]
    assert last["audioEndTime"] == pytest.approx(last_audio, abs=0.01)  # every bit of the dub is sent
    assert last["endTime"] <= 10.0 and job["video_duration"] == 10.0  # planned and billed on 10 s
    assert not any("truncated" in w or "cut to" in w for w in job["warnings"]), job["warnings"]
    assert any("variable frame rate" in w and "255 frames over 10 s" in w for w in job["warnings"])
    assert len(job["request"]["settings"]["activeSpeakerDetection"]["boundingBoxes"]) == 255

    result = run(manifest, tmp_path)
    [output] = result["outputs"]
    assert output["verdict"] in ("pass", "warn") and output["quarantined_to"] is None
    report = check(capsys, output["output"], clip, tmp_path)
    checked = statuses(report)
    assert checked["duration"] == checked["speech_in_segments"] == checked["av_offset"] == "pass"
    assert checked["outside_face_unchanged"] == "pass"  # frames compared by the source's timestamps


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_clip_at_24_then_30_fps_is_planned_inside_its_end_and_runs_without_decode_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synth.make_rate_change_clip(
        tmp_path / "screen.mp4", first=("24", 5.0), then=("30", 1.0), size=SIZE
    )
    # What made `run` refuse it: decoding to the null muxer complains about its timestamps.
    null = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i", str(clip), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert null.returncode == 0 and "non monotonically increasing dts" in null.stderr

    code, out, _ = cli(capsys, "probe", "--json", str(clip))
    video = json.loads(out)[0]["video"]
    assert code == 0 and video["fps"] == "24/1"  # ffprobe's guess, from the first seconds
    assert video["frame_count"] == 150  # 120 at 24 fps, then 30 at 30 fps
    assert video["variable_frame_rate"] is True and video["duration"] == pytest.approx(6.0, abs=1e-3)

    synth.speak("Gracias por mirar este video.", tmp_path / "es" / "l1.wav", voice="es")
    manifest = write(
        tmp_path / "manifest.yaml",
        f"""version: 1
video: screen.mp4
name: screen
speakers:
  host: {{box: {FACE}}}
languages:
  es:
    lines:
      - {{id: l1, start: 4.0, end: 5.9, audio: es/l1.wav}}
""",
    )
    [job] = plan_json(capsys, manifest, tmp_path)["jobs"]
    [segment] = job["request"]["settings"]["segments"]
    assert segment["endTime"] <= 6.0  # frame count / 24 fps would put the end at 6.25 s
    assert segment["endTime"] - segment["startTime"] >= segment["audioEndTime"] - segment["audioStartTime"]

    result = run(manifest, tmp_path)
    [output] = result["outputs"]
    assert output["verdict"] in ("pass", "warn") and output["error"] is None
    checked = statuses(check(capsys, output["output"], clip, tmp_path))
    assert checked["decode"] == checked["duration"] == checked["outside_face_unchanged"] == "pass"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rotated_phone_clip_with_a_box_drawn_on_the_portrait_picture_runs_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = (180, 320)
    clip = synth.make_rotated_clip(tmp_path / "portrait.mp4", shown=shown, rotation=90, duration=3.0)
    box = list(synth.face_box(*shown))  # [67, 53, 112, 266]: below y=180, outside the stored 320x180
    assert box[3] > 180

    code, out, _ = cli(capsys, "probe", str(clip))
    assert code == 0 and "320x180" in out and "180x320 (rotated 90)" in out
    code, out, _ = cli(capsys, "probe", "--json", str(clip))
    video = json.loads(out)[0]["video"]
    assert (video["width"], video["height"], video["rotation"]) == (320, 180, 90)
    assert (video["display_width"], video["display_height"]) == shown and len(video["display_matrix"]) == 9

    synth.speak("Hola, esto es una prueba.", tmp_path / "es" / "l1.wav", voice="es")
    manifest = write(
        tmp_path / "manifest.yaml",
        f"""version: 1
video: portrait.mp4
name: portrait
speakers:
  anna: {{box: {box}}}
languages:
  es:
    lines:
      - {{id: l1, start: 0.5, end: 2.6, audio: es/l1.wav}}
""",
    )
    [job] = plan_json(capsys, manifest, tmp_path)["jobs"]
    assert job["face_box"] == box
    assert job["request"]["settings"]["activeSpeakerDetection"]["boundingBoxes"][0] == box

    result = run(manifest, tmp_path)
    [output] = result["outputs"]
    assert output["verdict"] in ("pass", "warn") and output["quarantined_to"] is None
    report = check(capsys, output["output"], clip, tmp_path)
    checked = statuses(report)
    assert checked["geometry"] == checked["outside_face_unchanged"] == "pass"
    assert report["face"]["face_box"] == box
    upright = probe(output["output"], cache=None).video
    assert upright is not None and (upright.width, upright.height, upright.rotation) == (*shown, 0)


def test_broadcast_master_script_in_its_own_timecode_plans_with_timecode_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synth.make_timecoded_clip(tmp_path / "master.mov", timecode="01:00:00:00", duration=3.0, fps="25")
    synth.make_tone(tmp_path / "es" / "l1.wav", duration=0.9)
    code, out, _ = cli(capsys, "probe", "--json", str(tmp_path / "master.mov"))
    assert code == 0 and json.loads(out)[0]["timecode"] == "01:00:00:00"

    body = """video: master.mov
languages:
  es:
    lines:
      - {id: l1, start: "01:00:01:12", end: "01:00:02:10", audio: es/l1.wav}
"""
    without = write(tmp_path / "without.yaml", "version: 1\n" + body)
    code, _, err = cli(capsys, "plan", str(without))
    assert code == 1
    assert f"{without}:6:" in err and "field languages.es.lines[0].start" in err
    assert "timecode starts at 01:00:00:00" in err and "timecode_start: source" in err

    for start in ("source", '"01:00:00:00"'):
        manifest = write(tmp_path / "with.yaml", f"version: 1\ntimecode_start: {start}\n" + body)
        [job] = plan_json(capsys, manifest, tmp_path)["jobs"]
        [segment] = job["request"]["settings"]["segments"]
        assert segment["startTime"] == 1.48  # 1 s and 12 frames at 25 fps after 01:00:00:00


def test_drop_frame_label_that_cannot_exist_is_refused_with_file_and_line_beside_the_timing_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synth.make_talking_card(tmp_path / "ntsc.mp4", duration=2.0, fps="30000/1001", size=(160, 90))
    synth.make_tone(tmp_path / "l.wav", duration=0.5)
    manifest = write(
        tmp_path / "manifest.yaml",
        """version: 1
video: ntsc.mp4
languages:
  es:
    lines:
      - {id: a, start: "00:01:00;00", end: 1.0, audio: l.wav}
      - {id: b, start: 1.5, end: 1.2, audio: l.wav}
""",
    )
    code, _, err = cli(capsys, "plan", str(manifest))
    assert code == 1
    # "00:01:00;00" does not exist (drop-frame skips ;00 and ;01 there); read as 59.993 s before.
    assert f"{manifest}:6: [language es, line a, field languages.es.lines[0].start]" in err
    assert "'00:01:00;00' does not exist in drop-frame timecode" in err and "'00:01:00;02'" in err
    # The syntax pass does not hide the timing pass: line b's error is in the same answer.
    assert f"{manifest}:7: [language es, line b, field languages.es.lines[1].end]" in err
    assert "end 1.2 s is not after start 1.5 s" in err
