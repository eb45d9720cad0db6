"""``python -m kaelix.monitor NAME``: attach to a shared stream by name and show its live
dashboard (throughput, lag, fill level, drops and alerts of every process using it).

Opens the stream with ``Stream.open`` and only reads the ring counters: it takes no
consumer or producer slot, so it neither slows nor holds back the processes it watches, and
leaving detaches without closing the stream.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m kaelix.monitor",
        description="Live dashboard of a shared kaelix stream (opened by name).",
    )
    parser.add_argument("name", help="the shared stream's name")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between samples (default 0.1)"
    )
    parser.add_argument(
        "--refresh", type=float, default=0.5, help="seconds between redraws (default 0.5)"
    )
    parser.add_argument(
        "--window", type=float, default=1.0, help="seconds over which rates are computed"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this long")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--plain", action="store_true", help="ANSI redraws even with rich")
    args = parser.parse_args(argv)
    if not args.interval > 0 or not args.refresh > 0 or not args.window > 0:
        parser.error("--interval, --refresh and --window must be positive")

    from kaelix._stream import Stream
    from kaelix.errors import StreamNotFound
    from kaelix.monitor._dashboard import dashboard, render
    from kaelix.monitor._sampler import Monitor

    try:
        stream = Stream.open(args.name)
    except StreamNotFound:
        print(
            f"kaelix.monitor: no shared stream named {args.name!r} (is it made with "
            f"shared=True, and still open?)",
            file=sys.stderr,
        )
        return 2
    with stream:  # an opened stream detaches on exit, never closes
        monitor = Monitor(stream, interval=args.interval)
        if args.once:
            monitor.sample()
            time.sleep(args.interval)
            monitor.sample()
            sys.stdout.write(render(monitor, window=max(args.window, args.interval)))
            sys.stdout.flush()
            return 0
        dashboard(
            monitor,
            refresh=args.refresh,
            duration=args.duration,
            use_rich=False if args.plain else None,
            window=args.window,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
