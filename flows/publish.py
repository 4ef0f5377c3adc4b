"""`publish-dub`: the shape of a team's own step after each delivered dub, started by its event.

`deployments/prefect.yaml` deploys it with a trigger on `prefect-lipsync.output.delivered`, its
parameters templated from the event, so each delivered output starts one run. Replace its body with
the team's publishing (a CMS upload, a review ticket); keep the parameters.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_link_artifact

from prefect_lipsync.storage.publish import publish_file
from prefect_lipsync.storage.refs import is_s3
from prefect_lipsync.tasks.report import artifact_key


@flow(
    name="publish-dub",
    description="A team's step per delivered dub (an example): copy it where it is published.",
)
async def publish_dub(
    output: str,
    manifest: str,
    language: str,
    verdict: str | None = None,
    report: str | None = None,
    task_uuid: str | None = None,
    publish_to: str | None = None,
) -> str:
    """Publish one delivered dub: copy it under `publish_to` and link it in the UI.

    Args:
        output: The delivered video (a local path or `s3://` key), from the event's payload.
        manifest: The manifest's run name the output belongs to.
        language: The dub's language.
        verdict: The quality verdict it was delivered with (`pass` or `warn`).
        report: Its quality report (JSON), beside it.
        task_uuid: The sync-3 task that made it.
        publish_to: A folder or `s3://bucket/prefix` to copy it to; empty: only log and link it.

    Returns:
        Where the dub is published (the output itself when `publish_to` is empty).
    """
    logger = get_run_logger()
    where = output
    if publish_to:
        name = PurePosixPath(output).name
        target = f"{publish_to.rstrip('/')}/{manifest}/{name}"
        if is_s3(output):
            from prefect_lipsync.storage.cache import materialize

            local = str(materialize(output))
        else:
            local = output
        where = publish_file(local, target)
    logger.info("%s (%s): %s, published at %s (task %s)", manifest, language, verdict, where, task_uuid)
    await acreate_link_artifact(
        link=where if "://" in where else f"file://{where}",
        link_text=f"{manifest} ({language})",
        key=artifact_key("lipsync-published", manifest, language),
        description=f"The published dub of {manifest} ({language}); report: {report or 'none'}",
    )
    return where
