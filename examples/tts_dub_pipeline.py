"""A team's own media pipeline with lip-sync as one step, built from prefect-lipsync's public tasks.

Translated text -> the team's TTS (espeak-ng stands in for it) -> `build_segments` from a manifest
made in memory -> every language submitted at once -> one wait for all -> download -> checks -> the
team's own publish step. The same pipeline twice: as a sync flow and as an async flow.

    python examples/tts_dub_pipeline.py --out dub-output            # sync flow, local emulator
    python examples/tts_dub_pipeline.py --out dub-output --async    # the async flow

With no RUNWARE_API_KEY the tasks run on the local emulator (dub previews, nothing paid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from prefect import flow, task

from prefect_lipsync.tasks import (
    QualityReport,
    abuild_segments,
    adownload_lipsync_output,
    aprobe_media,
    arun_quality_checks,
    asubmit_lipsync_job,
    await_for_lipsync_jobs,
    build_segments,
    download_lipsync_output,
    probe_media,
    run_quality_checks,
    submit_lipsync_job,
    wait_for_lipsync_jobs,
)

#: What the team's translation step hands over: per language, the espeak voice and the lines
#: (id, start and end in the source video, translated text).
TRANSLATIONS: dict[str, dict[str, Any]] = {
    "es": {
        "voice": "es",
        "lines": [
            {"id": "l1", "start": 0.5, "end": 2.9, "text": "Hola, bienvenidos."},
            {"id": "l2", "start": 3.4, "end": 5.8, "text": "Gracias por mirar."},
        ],
    },
    "de": {
        "voice": "de",
        "lines": [
            {"id": "l1", "start": 0.5, "end": 2.9, "text": "Hallo und willkommen."},
            {"id": "l2", "start": 3.4, "end": 5.8, "text": "Danke fürs Zuschauen."},
        ],
    },
}


@task(name="tts-line")
def speak_line(text: str, voice: str, path: str) -> str:
    """The team's TTS for one line (espeak-ng here): a WAV file."""
    from prefect_lipsync.media.synth import speak

    return str(speak(text, path, voice=voice, speed_wpm=175))


def manifest_for(source: str, name: str, audio: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The lip-sync manifest, in memory, from the translations and the spoken lines."""
    return {
        "version": 1,
        "name": name,
        "video": source,
        "languages": {
            language: {
                "lines": [
                    {
                        "id": line["id"],
                        "start": line["start"],
                        "end": line["end"],
                        "audio": audio[language][line["id"]],
                    }
                    for line in spec["lines"]
                ]
            }
            for language, spec in TRANSLATIONS.items()
        },
    }


@task(name="publish-dub")
def publish(output: str, report: QualityReport, language: str, published_dir: str) -> str | None:
    """The team's own publish step: only a dub whose checks did not fail goes out."""
    if report.verdict == "fail":
        return None
    target = Path(published_dir) / language / Path(output).name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(output, target)
    return str(target)


@flow(name="dub-pipeline")
def dub_pipeline(source: str, out_dir: str, name: str = "promo") -> dict[str, str | None]:
    """TTS per line, plan, submit every language at once, wait for all, download, check, publish."""
    out = Path(out_dir).resolve()
    spoken = {
        language: {
            line["id"]: speak_line.submit(
                line["text"], spec["voice"], str(out / "tts" / language / f"{line['id']}.wav")
            )
            for line in spec["lines"]
        }
        for language, spec in TRANSLATIONS.items()
    }
    audio = {lang: {i: f.result() for i, f in lines.items()} for lang, lines in spoken.items()}
    info = probe_media(source)
    jobs = build_segments(manifest_for(source, name, audio))
    submitted = [future.result() for future in submit_lipsync_job.map(jobs)]
    published: dict[str, str | None] = {}
    for job, done in zip(jobs, wait_for_lipsync_jobs(submitted, raise_on_failure=True), strict=True):
        video = download_lipsync_output(
            done.results[0], str(out / "outputs" / job.output_name), expected_duration_s=info.duration
        )
        report = run_quality_checks(video, source=source, job=job, result=done.results[0])
        published[job.language] = publish(video, report, job.language, str(out / "published"))
    return published


@flow(name="dub-pipeline-async")
async def adub_pipeline(source: str, out_dir: str, name: str = "promo") -> dict[str, str | None]:
    """The same pipeline as an async flow: the `a`-prefixed tasks, awaited together."""
    out = Path(out_dir).resolve()
    audio: dict[str, dict[str, str]] = {}
    for language, spec in TRANSLATIONS.items():
        futures = {
            line["id"]: speak_line.submit(
                line["text"], spec["voice"], str(out / "tts" / language / f"{line['id']}.wav")
            )
            for line in spec["lines"]
        }
        audio[language] = {i: f.result() for i, f in futures.items()}
    info = await aprobe_media(source)
    jobs = await abuild_segments(manifest_for(source, name, audio))
    submitted = list(await asyncio.gather(*(asubmit_lipsync_job(job) for job in jobs)))
    waited = await await_for_lipsync_jobs(submitted, raise_on_failure=True)

    async def deliver(job: Any, done: Any) -> tuple[str, str | None]:
        video = await adownload_lipsync_output(
            done.results[0], str(out / "outputs" / job.output_name), expected_duration_s=info.duration
        )
        report = await arun_quality_checks(video, source=source, job=job, result=done.results[0])
        return job.language, publish(video, report, job.language, str(out / "published"))

    return dict(await asyncio.gather(*(deliver(j, d) for j, d in zip(jobs, waited, strict=True))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dub-output", help="Folder for speech, outputs and published dubs.")
    parser.add_argument("--source", help="The source video (default: a talking card made with ffmpeg).")
    parser.add_argument("--async", dest="use_async", action="store_true", help="Run the async flow.")
    args = parser.parse_args()
    source = args.source
    if source is None:
        from prefect_lipsync.media.synth import make_talking_card

        source = str(Path(args.out).resolve() / "source.mp4")
        if not Path(source).exists():
            make_talking_card(source, duration=6.5, size=(320, 180))
    published = (
        asyncio.run(adub_pipeline(source, args.out)) if args.use_async else dub_pipeline(source, args.out)
    )
    print(json.dumps(published, indent=2))


if __name__ == "__main__":
    main()
