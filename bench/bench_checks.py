"""Benchmark: the post-checks of a 60 s 1280x720 output against one plain decode of it.

    .venv/bin/python bench/bench_checks.py [--seconds 60] [--repeat 3]

Builds a talking-card source, six spoken lines and an output (source picture re-encoded with
x264 veryfast, the lines mixed at their segments), then times, in the same run:
  baseline      ffmpeg -i OUT -f null -   (one plain decode of the output)
  checks        check_output(...) with the plan (segments, submitted audio): every check
  checks+face   the same with a face and mouth box (SSIM on sampled frames of both files)
  source analysis    analyze_source(...): the ONE decode of the source per run, shared by pre-flight
                     and the checks of every language (measured once, reported on its own)
  planned checks     check_planned_output(...) given that analysis: every check the flow runs, with
                     the plan's face box, face/mouth SSIM and lipsync_offset (per language)
  planned, alone     the same without a shared analysis (the source decoded again for this language)
and prints each median with its ratio to the baseline. Target: checks with face SSIM <= 2.0x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.synth import face_box, make_talking_card, mouth_box, speak
from prefect_lipsync.quality.checks import check_output
from prefect_lipsync.quality.planned import check_planned_output
from prefect_lipsync.quality.source_analysis import SourceAnalysis, analyze_source
from prefect_lipsync.quality.streams import probe_streams

SIZE = (1280, 720)
LINES = [
    "Bienvenidos a nuestro programa de esta noche.",
    "Hoy hablamos de cine, de música y de libros.",
    "Nuestro invitado llega desde muy lejos.",
    "Gracias por estar aquí con nosotros.",
    "Ahora, una pausa breve y volvemos enseguida.",
    "Hasta mañana, y buenas noches a todos.",
]


def build(root: Path, seconds: float) -> tuple[Path, Path, dict[str, object]]:
    source = make_talking_card(root / "source.mp4", duration=seconds, size=SIZE, timeout=600)
    slot = seconds / len(LINES)
    segments = []
    parts = []
    inputs: list[str] = []
    for i, text in enumerate(LINES):
        wav = speak(text, root / f"line{i}.wav", voice="es", speed_wpm=170)
        start = round(i * slot + 0.5, 2)
        spoken = float(probe_streams(wav).duration)
        end = round(min(start + spoken, start + slot - 1.0, seconds), 2)
        segments.append(
            {
                "startTime": start,
                "endTime": end,
                "audio": wav.as_uri(),
                "audioStartTime": 0,
                "audioEndTime": round(end - start, 2),
            }
        )
        inputs += ["-i", str(wav)]
        parts.append(f"[{i + 1}:a]atrim=0:{end - start:.3f},adelay={round(start * 1000)}:all=1[d{i}]")
    mix = "".join(f"[d{i}]" for i in range(len(LINES)))
    graph = ";".join(
        [*parts, f"{mix}amix=inputs={len(LINES)}:normalize=0,volume=-6dB,apad,atrim=0:{seconds}[a]"]
    )
    output = root / "output.mp4"
    run_ffmpeg(
        [
            "-y",
            "-i",
            str(source),
            *inputs,
            "-filter_complex",
            graph,
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            str(output),
        ],
        timeout=1200,
    )
    payload = {"inputs": {"video": source.as_uri()}, "settings": {"segments": segments}}
    return source, output, payload


def median_times(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median seconds of each function, run round-robin so a change of load hits all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            started = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp:
        print(f"building a {args.seconds:g} s {SIZE[0]}x{SIZE[1]} output ...", file=sys.stderr)
        source, output, payload = build(Path(tmp), args.seconds)
        verdicts: dict[str, str] = {}

        def plain() -> None:
            run_ffmpeg(["-i", str(output), "-f", "null", "-"], timeout=600)

        def checks() -> None:
            verdicts["checks"] = check_output(output, source=source, request_payload=payload).verdict

        def checks_face() -> None:
            report = check_output(
                output,
                source=source,
                request_payload=payload,
                face_box=face_box(*SIZE),
                mouth_box=mouth_box(*SIZE),
                lipsync_expected=False,
            )
            verdicts["checks+face"] = report.verdict

        job = {"language": "es", "request": payload, "face_box": list(face_box(*SIZE))}
        shared: dict[str, SourceAnalysis] = {}

        def source_analysis() -> None:
            shared["analysis"] = analyze_source(source, request_payloads=[payload])

        def planned(analysis: SourceAnalysis | None) -> Callable[[], None]:
            def run() -> None:
                report = check_planned_output(
                    output, source, job, nsfw_flag=None, lipsync_expected=False, source_analysis=analysis
                )
                key = "planned" if analysis else "planned alone"
                lipsync = report.check("lipsync_offset")
                verdicts[key] = f"{report.verdict} (lipsync_offset {lipsync.status if lipsync else 'absent'})"

            return run

        source_analysis()  # the planned checks with a shared analysis need one before their first round
        named = [
            ("baseline: ffmpeg -i OUT -f null -", plain, None),
            ("checks (plan, no face box)", checks, "checks"),
            ("checks + face/mouth SSIM", checks_face, "checks+face"),
            ("source analysis (once per run)", source_analysis, None),
            ("planned checks + lipsync, shared src", planned(shared["analysis"]), "planned"),
            ("planned checks + lipsync, alone", planned(None), "planned alone"),
        ]
        medians = median_times([fn for _, fn, _ in named], args.repeat)
        rows = [
            (name, m, verdicts[key] if key else "") for (name, _, key), m in zip(named, medians, strict=True)
        ]
    base = rows[0][1]
    print(f"{'run':38} {'median s':>9} {'ratio':>7}  verdict")
    for name, seconds, verdict in rows:
        print(f"{name:38} {seconds:9.2f} {seconds / base:6.2f}x  {verdict}")
    analysis_s, per_language = rows[3][1], rows[4][1]
    for languages in (1, 2, 4):
        each = per_language + analysis_s / languages
        print(
            f"a run of {languages} language(s): {each:.2f} s per language = {each / base:.2f}x (analysis shared)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
