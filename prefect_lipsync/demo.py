"""The offline demo: builds a talking-card video, dubbed lines in two languages and a manifest,
then runs `localize_video` on the local emulator and prints where everything is.

    python -m prefect_lipsync.demo --out demo-output
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.media.synth import face_box, make_talking_card, make_tone, speak

DEMO_SIZE = (640, 360)
DEMO_DURATION_S = 9.0

# (language, espeak voice, lines: (id, start, end, text))
DEMO_LINES: dict[str, tuple[str, list[tuple[str, float, float, str]]]] = {
    "es": (
        "es",
        [
            ("l001", 0.5, 2.9, "Hola, bienvenidos a la demostración."),
            ("l002", 3.4, 5.8, "Este video fue doblado en la noche."),
            ("l003", 6.2, 8.6, "Gracias por mirar."),
        ],
    ),
    "de": (
        "de",
        [
            ("l001", 0.5, 2.9, "Hallo und willkommen zur Vorführung."),
            ("l002", 3.4, 5.8, "Dieses Video wurde über Nacht vertont."),
            ("l003", 6.2, 8.6, "Danke fürs Zuschauen."),
        ],
    ),
}


def build_demo(root: str | Path) -> Path:
    """Write the demo media and manifest under `root` (skipping files already there); return the manifest."""
    root = Path(root)
    media = root / "media"
    source = media / "source.mp4"
    if not source.exists():
        make_talking_card(source, duration=DEMO_DURATION_S, fps="25", size=DEMO_SIZE, tone_hz=180)
    languages: dict[str, object] = {}
    for language, (voice, lines) in DEMO_LINES.items():
        entries = []
        for line_id, start, end, text in lines:
            audio = media / language / f"{line_id}.wav"
            if not audio.exists():
                speak(text, audio, voice=voice, speed_wpm=175)
            entries.append(
                {
                    "id": line_id,
                    "start": start,
                    "end": end,
                    "audio": f"media/{language}/{line_id}.wav",
                    "speaker": "host",
                    "text": text,
                }
            )
        languages[language] = {"lines": entries}
    manifest = {
        "version": 1,
        "name": "demo",
        "video": "media/source.mp4",
        "defaults": {"sync_mode": "cut_off", "merge_gap": 0.25, "min_segment": 0.5, "max_tempo": 1.1},
        "speakers": {"host": {"box": list(face_box(*DEMO_SIZE))}},
        "languages": languages,
    }
    return write_text_atomic(
        root / "manifest.yaml", yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)
    )


BATCH_SIZE = (320, 180)
BATCH_DURATION_S = 3.0


def build_batch_inbox(root: str | Path, manifests: int) -> list[Path]:
    """A nightly inbox of `manifests` small two-language manifests (es, de) over one short source.

    Each language of each manifest has its own dub (a tone of its own pitch), so every job is a
    distinct paid task: the shape of a night's batch, at a size a laptop checks quickly.
    """
    root = Path(root)
    source = root / "media" / "source.mp4"
    if not source.exists():
        make_talking_card(source, duration=BATCH_DURATION_S, fps="25", size=BATCH_SIZE, tone_hz=180)
    paths = []
    for index in range(manifests):
        languages: dict[str, object] = {}
        for offset, language in enumerate(("es", "de")):
            audio = root / "media" / f"m{index:04d}-{language}.wav"
            if not audio.exists():
                make_tone(audio, duration=2.0, frequency=200 + 2 * index + offset)
            line = {"id": "l001", "start": 0.4, "end": 2.4, "audio": f"media/{audio.name}", "speaker": "host"}
            languages[language] = {"lines": [line]}
        manifest = {
            "version": 1,
            "name": f"night-{index:04d}",
            "video": "media/source.mp4",
            "speakers": {"host": {"box": list(face_box(*BATCH_SIZE))}},
            "languages": languages,
        }
        paths.append(
            write_text_atomic(
                root / f"night-{index:04d}.yaml",
                yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True),
            )
        )
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build demo media and run it offline on the local emulator.")
    parser.add_argument("--out", default="demo-output", help="Folder for the demo media and outputs.")
    args = parser.parse_args(argv)
    # A newcomer's first run must print no telemetry errors: the demo never phones home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    out = Path(args.out).resolve()
    print(f"Building demo media in {out / 'media'} (ffmpeg + espeak-ng) ...", flush=True)
    manifest = build_demo(out)
    from prefect_lipsync.run_cli import run_manifest

    return run_manifest(manifest, out / "outputs", quality_policy="warn")


if __name__ == "__main__":
    sys.exit(main())
