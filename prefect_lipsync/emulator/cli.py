"""`prefect-lipsync emulator`: serve the local Runware emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from prefect_lipsync.emulator.config import DEFAULT_PRICE_PER_SECOND, DEFAULT_TTL_S


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="Serve a local Runware-compatible API (dub preview: real video, lips are not moved).",
        description=(
            "Serve a local emulator of the Runware API for sync-3 (REST and WebSocket, on one port). Outputs are real videos with the"
            " audio laid out as requested; the picture is unchanged (no lip movement)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8765, help="Port (default 8765; 0 picks a free one).")
    parser.add_argument(
        "--latency", type=float, default=2.0, metavar="SECONDS", help="Time until a job finishes."
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of every random choice (faults, result seeds)."
    )
    parser.add_argument(
        "--http-error-rate", type=_rate, default=0.0, metavar="R", help="Share of POSTs answered 429/5xx."
    )
    parser.add_argument(
        "--drop-rate", type=_rate, default=0.0, metavar="R", help="Share of POSTs whose connection drops."
    )
    parser.add_argument(
        "--lose-submit-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="Share of accepted submits whose answer is lost.",
    )
    parser.add_argument(
        "--task-error-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="Share of tasks failing with timeoutProvider.",
    )
    parser.add_argument(
        "--slow-rate", type=_rate, default=0.0, metavar="R", help="Share of POSTs answered slowly."
    )
    parser.add_argument("--slow-seconds", type=float, default=1.0, help="Delay of a slow answer.")
    parser.add_argument(
        "--download-error-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="Share of results whose first download answers 422/502.",
    )
    parser.add_argument(
        "--empty-ack-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="Share of ACKs with an empty data list.",
    )
    parser.add_argument(
        "--statusless-success-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="Share of tasks whose finished items have no status field.",
    )
    parser.add_argument("--api-key", default=None, help="Accept only this key (default: any non-empty key).")
    parser.add_argument("--price-per-second", type=float, default=DEFAULT_PRICE_PER_SECOND, metavar="USD")
    parser.add_argument(
        "--credits-usd",
        "--credits",
        dest="credits_usd",
        type=float,
        default=None,
        metavar="USD",
        help="Account balance (default unlimited).",
    )
    parser.add_argument(
        "--nsfw-rule",
        action="append",
        default=[],
        metavar="RULE",
        help="text:WORD (speech containing WORD), rate:R, or task:UUID; repeatable.",
    )
    parser.add_argument("--storage-dir", default=None, metavar="DIR", help="Keep uploads and outputs here.")
    parser.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL_S, help="Default lifetime of result URLs, seconds."
    )
    parser.add_argument(
        "--reject-batch-polls", action="store_true", help="Answer 400 to several getResponse per POST."
    )
    parser.add_argument(
        "--rate-limit-per-second",
        "--rate-limit",
        dest="rate_limit_per_second",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="429 above this rate.",
    )
    parser.add_argument("--webhook-shape", choices=("flat", "data"), default="flat")
    parser.set_defaults(handler=_run)


def _nsfw_options(rules: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    uuids: list[str] = []
    for rule in rules:
        kind, _, value = rule.partition(":")
        if kind == "text" and value:
            options["nsfw_when_text_contains"] = value
        elif kind == "rate":
            options["nsfw_rate"] = _rate(value)
        elif kind == "task" and value:
            uuids.append(value)
        else:
            raise ValueError(f"--nsfw-rule {rule!r}: use text:WORD, rate:R or task:UUID")
    if uuids:
        options["nsfw_task_uuids"] = frozenset(uuids)
    return options


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    from prefect_lipsync.emulator.server import run_emulator

    try:
        options: dict[str, Any] = dict(
            latency=args.latency,
            seed=args.seed,
            http_error_rate=args.http_error_rate,
            drop_rate=args.drop_rate,
            lose_submit_rate=args.lose_submit_rate,
            task_error_rate=args.task_error_rate,
            slow_rate=args.slow_rate,
            slow_seconds=args.slow_seconds,
            download_error_rate=args.download_error_rate,
            empty_ack_rate=args.empty_ack_rate,
            statusless_success_rate=args.statusless_success_rate,
            api_key=args.api_key,
            price_per_second=args.price_per_second,
            credits_usd=args.credits_usd,
            storage_dir=args.storage_dir,
            ttl=args.ttl,
            reject_batch_polls=args.reject_batch_polls,
            rate_limit_per_second=args.rate_limit_per_second,
            webhook_shape=args.webhook_shape,
            **_nsfw_options(args.nsfw_rule),
        )
        # Ctrl-C stops it even when started by a parent that ignores SIGINT (a shell's `cmd &`, a pytest-xdist
        # worker): Python keeps an inherited "ignore" and the command would then never stop.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # SIGTERM (a supervisor's or `kill`'s stop) ends it the same way, so its temporary storage of
        # uploads and renderings is removed rather than left behind in the temp folder.
        signal.signal(signal.SIGTERM, _interrupt)
        with run_emulator(host=args.host, port=args.port, log_level="info", **options) as base_url:
            print(f"Runware emulator listening on {base_url}", flush=True)
            print(f"WebSocket: {base_url.replace('http://', 'ws://', 1)}", flush=True)
            print(
                "Outputs are dub previews: the audio is laid out as requested, lips are not moved.",
                flush=True,
            )
            print("Stop with Ctrl-C.", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"prefect-lipsync emulator: {exc}", file=sys.stderr)
        return 1
    return 0
