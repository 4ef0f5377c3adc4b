"""Lip sync: a synthetic face whose mouth opens with the speech, in sync, 200 ms late and still;
the face finder on a real photograph; best of three variations; the CLI and the pictures."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prefect_lipsync.emulator.render import probe_source, render, variation_audio_offset
from prefect_lipsync.media.synth import speak
from prefect_lipsync.quality import QualityReport, check_planned_output, choose_best, write_pictures
from prefect_lipsync.quality.bestof import lipsync_score
from prefect_lipsync.quality.face import DlibFaceFinder, HaarFaceFinder, face_finder, find_face
from prefect_lipsync.quality.lipsync import audio_envelope, envelope_change, measure_lag
from prefect_lipsync.quality.source_analysis import analyze_source
from prefect_lipsync.runware.models import Sync3Request

from .talking_face import FACE_BOX, MOUTH_BOX, make_talking_face

DURATION = 5.0
TEXT = "Hola a todos y bienvenidos. Esta es una prueba de doblaje, con muchas palabras distintas."


@dataclass(frozen=True)
class Faces:
    speech: Path
    still: Path  # the "source": the mouth does not follow the dub
    in_sync: Path
    late: Path
    job: dict[str, Any]  # one job of `plan --json`, with the manifest speaker's face box


@pytest.fixture(scope="session")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Faces:
    root = tmp_path_factory.mktemp("lipsync-media")
    speech = speak(TEXT, root / "dub.wav", voice="es", speed_wpm=175)
    still = make_talking_face(root / "still.mp4", speech, duration=DURATION, still=True)
    in_sync = make_talking_face(root / "in_sync.mp4", speech, duration=DURATION)
    late = make_talking_face(root / "late.mp4", speech, duration=DURATION, delay_s=0.2)
    request = {"model": "sync:3@0", "inputs": {"video": still.as_uri(), "audio": speech.as_uri()}}
    job = {"language": "es", "request": request, "face_box": list(FACE_BOX)}
    return Faces(speech, still, in_sync, late, job)


def _check(faces: Faces, output: Path, *, expected: bool = True) -> QualityReport:
    return check_planned_output(output, faces.still, faces.job, nsfw_flag=None, lipsync_expected=expected)


def test_lips_in_sync_pass(faces: Faces) -> None:
    report = _check(faces, faces.in_sync)
    check = report.check("lipsync_offset")
    assert check is not None and check.status == "pass", check
    assert isinstance(check.value, float) and abs(check.value) <= 40
    assert report.lipsync and report.lipsync[0].confidence >= 0.3
    # The plan's face box; the mouth from dlib's lip landmarks (it finds even this drawn face) or, without
    # landmarks, the fixed part of the face box: either way around the drawn mouth.
    assert report.face_box == FACE_BOX and (report.face_source or "").startswith("face box from the plan")
    mx1, my1, mx2, my2 = report.mouth_box or (0, 0, 0, 0)
    cx, cy = (MOUTH_BOX[0] + MOUTH_BOX[2]) / 2, (MOUTH_BOX[1] + MOUTH_BOX[3]) / 2
    assert mx1 < cx < mx2 and my1 < cy < my2
    assert report.check("mouth_changed") is not None and report.check("mouth_changed").status == "pass"  # type: ignore[union-attr]


def test_lips_200_ms_late_fail_with_the_lag_measured(faces: Faces) -> None:
    report = _check(faces, faces.late)
    check = report.check("lipsync_offset")
    assert check is not None and check.status == "fail", check
    assert isinstance(check.value, float) and abs(check.value - 200) <= 40
    assert report.verdict == "fail"
    assert check.at and check.at[0].start < 1.0 < check.at[0].end  # where: the measured window


def test_without_a_face_box_in_the_plan_the_face_finder_gives_it(faces: Faces) -> None:
    from prefect_lipsync.manifest.plan_models import PlannedJob

    job = PlannedJob(
        language="es",
        kind="audio",
        request=Sync3Request.model_validate(faces.job["request"]),
        output_name="late.mp4",
        video_duration=DURATION,
    )
    report = check_planned_output(faces.late, faces.still, job, nsfw_flag=None, lipsync_expected=True)
    # dlib finds even the drawn face (its landmarks put the mouth around the drawn one).
    assert report.face_source == "face found by dlib-68-landmarks" and report.face_box is not None
    check = report.check("lipsync_offset")
    assert check is not None and check.status == "fail" and abs(float(check.value or 0) - 200) <= 40


def test_a_still_mouth_warns_that_no_lip_movement_was_found(faces: Faces) -> None:
    report = _check(faces, faces.still, expected=False)
    check = report.check("lipsync_offset")
    assert check is not None and check.status == "warn"
    assert "No lip movement" in check.message
    assert report.lipsync[0].confidence == 0.0


def test_an_offset_only_warns_for_output_not_made_by_a_lipsync_model(faces: Faces) -> None:
    check = _check(faces, faces.late, expected=False).check("lipsync_offset")
    assert (
        check is not None and check.status == "warn" and "did not come from a lip-sync model" in check.message
    )


def test_the_lag_is_the_shift_of_the_mouth_against_the_audio() -> None:
    # Pure: a spiky audio envelope and the same spikes 5 frames later in the mouth.
    rng = np.random.default_rng(1)
    audio = np.zeros(200)
    audio[rng.choice(np.arange(20, 180), 25, replace=False)] = 1.0
    motion = np.roll(audio, 5) + 0.01 * rng.random(200) + 1.0
    result = measure_lag(motion, audio, start=0, end=200, fps=25.0, max_lag=10)
    assert result is not None
    measure, curve = result
    assert measure.lag_s == pytest.approx(0.2, abs=0.02) and measure.moving
    assert curve.size == 21 and measure.confidence > 0.5


def test_envelope_is_per_frame_rms() -> None:
    pcm = np.concatenate([np.zeros(640), np.full(640, 0.5)]).astype(np.float32)
    env = audio_envelope(pcm, rate=16000, fps=25.0, frames=2)
    assert env == pytest.approx([0.0, 0.5])
    assert envelope_change(env) == pytest.approx([0.0, 0.5])


def test_shared_source_analysis_gives_the_same_report(faces: Faces) -> None:
    analysis = analyze_source(faces.still, request_payloads=[faces.job["request"]])
    shared = check_planned_output(
        faces.late, faces.still, faces.job, nsfw_flag=None, lipsync_expected=True, source_analysis=analysis
    )
    alone = _check(faces, faces.late)
    assert [(c.name, c.status, c.value) for c in shared.checks] == [
        (c.name, c.status, c.value) for c in alone.checks
    ]


# --------------------------------------------------------------------------- face finder


def test_both_face_finders_find_the_astronaut_and_her_mouth() -> None:
    from skimage import data  # a photograph shipped with scikit-image (no download)

    gray = np.asarray(Image.fromarray(data.astronaut()).convert("L"))
    for finder in (DlibFaceFinder(), HaarFaceFinder()):
        found = finder.find(gray)
        assert found, finder.name
        x1, y1, x2, y2 = found[0].face
        # Her face is around x 170-270, y 70-180 of the 512x512 picture.
        assert 140 < x1 < 220 and 230 < x2 < 300 and 40 < y1 < 120 and 150 < y2 < 220, (finder.name, found[0])
        mx1, my1, mx2, my2 = found[0].mouth
        assert x1 <= mx1 < mx2 <= x2 and (y1 + y2) / 2 < my1 < my2 <= y2 + 10, (finder.name, found[0])
    assert face_finder().name == "dlib-68-landmarks"  # dlib-bin and face-recognition-models are installed


def test_no_face_is_found_in_a_texture() -> None:
    noise = np.random.default_rng(3).integers(0, 255, size=(240, 320), dtype=np.uint8)
    assert find_face([noise]) is None


# --------------------------------------------------------------------------- best of N


@pytest.mark.slow
def test_best_of_three_emulator_variations_picks_the_one_in_sync(faces: Faces, tmp_path: Path) -> None:
    # The emulator keeps the source's picture: a source whose lips follow the dub, and variations whose
    # audio the emulator moves by 200 ms, 0 and -300 ms (EmulatorConfig.variation_audio_offsets).
    offsets = (0.2, 0.0, -0.3)
    request = {
        "model": "sync:3@0",
        "inputs": {"video": faces.in_sync.as_uri(), "audio": faces.speech.as_uri()},
    }
    req = Sync3Request.model_validate(request)
    info = probe_source(faces.in_sync)
    reports = []
    for i in range(3):
        out = render(
            req,
            video=faces.in_sync,
            source=info,
            audio=faces.speech,
            segment_audio=[],
            output=tmp_path / f"variation{i}.mp4",
            timeout=120,
            audio_offset=variation_audio_offset(offsets, i),
        )
        job = {"request": request, "face_box": list(FACE_BOX)}
        reports.append(check_planned_output(out, faces.in_sync, job, nsfw_flag=False, lipsync_expected=False))
    lags = [r.lipsync[0].lag_ms for r in reports]
    assert (
        lags[0] == pytest.approx(-200, abs=40)
        and abs(lags[1]) <= 40
        and lags[2] == pytest.approx(300, abs=40)
    )
    choice = choose_best(reports)
    assert choice.index == 1 and choice.alternates == (0, 2)
    assert "variation 2 of 3" in choice.reason and "alternates" in choice.reason
    assert lipsync_score(reports[1]) > max(lipsync_score(reports[0]), lipsync_score(reports[2]))


def test_best_of_n_prefers_the_verdict_then_the_lipsync_score(faces: Faces) -> None:
    in_sync, late = _check(faces, faces.in_sync), _check(faces, faces.late)
    choice = choose_best([late, in_sync])
    assert choice.index == 1 and "the best verdict" in choice.reason
    same_verdict = [
        in_sync.model_copy(update={"verdict": "warn"}),
        in_sync.model_copy(update={"lipsync": []}),
    ]
    same_verdict[1].verdict = "warn"
    assert choose_best(same_verdict).index == 0
    assert "lip-sync score" in choose_best(same_verdict).reason
    with pytest.raises(ValueError, match="at least one"):
        choose_best([])


# --------------------------------------------------------------------------- report, pictures, CLI


def test_lipsync_picture_draws_both_curves_per_segment(faces: Faces, tmp_path: Path) -> None:
    output = tmp_path / "late.mp4"
    output.write_bytes(faces.late.read_bytes())
    report = _check(faces, output)
    pictures = write_pictures(report, output=output, source=faces.still, request_payload=faces.job["request"])
    assert {"timeline", "contact_sheet", "lipsync"} <= set(pictures)
    image = Image.open(pictures["lipsync"]).convert("RGB")
    colours = {image.getpixel((x, y)) for x in range(0, image.width, 2) for y in range(60, image.height, 2)}
    assert (66, 133, 244) in colours and (230, 120, 20) in colours  # audio and mouth curves
    body = json.loads(report.model_dump_json())
    assert body["lipsync"][0]["lag_ms"] == pytest.approx(200, abs=40) and body["lipsync"][0]["motion"]


@pytest.mark.slow
def test_cli_check_with_a_plan_runs_lipsync_with_the_plans_face_box(faces: Faces, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"jobs": [faces.job]}))
    cmd = [
        sys.executable,
        "-m",
        "prefect_lipsync.cli",
        "check",
        str(faces.late),
        "--source",
        str(faces.still),
        "--plan",
        str(plan),
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    check = next(c for c in body["checks"] if c["name"] == "lipsync_offset")
    assert check["status"] == "fail" and abs(check["value"] - 200) <= 40
    assert body["face"]["face_box"] == list(FACE_BOX) and body["lipsync"][0]["status"] == "fail"
    flow_verdict = _check(faces, faces.late).verdict
    assert body["verdict"] == flow_verdict


def test_cli_refuses_a_malformed_face_box_naming_the_job(faces: Faces, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"jobs": [{**faces.job, "face_box": [10, 10, 5]}]}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect_lipsync.cli",
            "check",
            str(faces.late),
            "--source",
            str(faces.still),
            "--plan",
            str(plan),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "face_box" in done.stderr and "'es'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_planned_face_box_past_the_picture_is_noted_not_raised(faces: Faces) -> None:
    job = {**faces.job, "face_box": [300, 220, 900, 900]}  # the picture is 320x240: its mouth box is outside
    report = check_planned_output(faces.late, faces.still, job, nsfw_flag=None, lipsync_expected=True)
    assert report.check("lipsync_offset") is None
    assert any("outside the picture" in note for note in report.notes)
