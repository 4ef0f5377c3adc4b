"""A one-process setup: serve both deployments from this process (no work pool, no worker).

python deployments/serve.py --folder /srv/localization/inbox --out /srv/localization/outputs
"""

from __future__ import annotations

import argparse

from prefect import serve

from prefect_lipsync.flows.localize import localize_batch, localize_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", required=True, help="Folder of manifests for the nightly batch.")
    parser.add_argument("--out", required=True, help="Folder for the outputs.")
    parser.add_argument("--cron", default="0 2 * * *", help="Schedule of the nightly batch (cron, UTC).")
    parser.add_argument("--limit", type=int, default=4, help="Flow runs at once in this process.")
    args = parser.parse_args()
    nightly = localize_batch.to_deployment(
        name="localize-nightly",
        cron=args.cron,
        parameters={"folder": args.folder, "out_dir": args.out},
    )
    adhoc = localize_video.to_deployment(
        name="localize-adhoc", parameters={"out_dir": args.out, "quality_policy": "ask"}
    )
    serve(nightly, adhoc, limit=args.limit)


if __name__ == "__main__":
    main()
