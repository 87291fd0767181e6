"""`python -m rote.brokers`: fetch the Kafka jars ahead of time (CI's setup step) or run a broker by hand.

Kept out of the `rote` CLI because it is plumbing for the Makefile and for debugging, not a user
feature; `rote run` starts brokers itself.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType

from rote.brokers import KAFKA_VERSION, KafkaBroker, TansuBroker, create_topics, ensure_kafka_jars
from rote.errors import BrokerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rote.brokers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch-kafka", help=f"resolve the Apache Kafka {KAFKA_VERSION} jars (cached)")
    fetch.add_argument("--version", default=KAFKA_VERSION)
    serve = sub.add_parser("serve", help="run a broker in the foreground until Ctrl-C")
    serve.add_argument("kind", choices=["tansu", "kafka"])
    serve.add_argument("--topics", action="store_true", help="create the catalogue's topics")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch-kafka":
            began = time.monotonic()
            libs = ensure_kafka_jars(version=args.version)
            jars = len(list(libs.glob("*.jar")))
            seconds = round(time.monotonic() - began, 2)
            print(json.dumps({"libs": str(libs), "jars": jars, "seconds": seconds}))
            return 0
        broker = TansuBroker() if args.kind == "tansu" else KafkaBroker()
        with broker:
            if args.topics:
                from rote.streams.topics import CATALOGUE

                create_topics(broker.bootstrap, CATALOGUE)
            info = {"kind": broker.kind, "bootstrap": broker.bootstrap, "start_seconds": broker.start_seconds}
            print(json.dumps(info), flush=True)

            def _stop(signum: int, frame: FrameType | None) -> None:
                raise KeyboardInterrupt

            signal.signal(signal.SIGTERM, _stop)
            try:
                while broker.running:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
