#!/usr/bin/env python3
"""Consume Runway's public events from Python with nats-py, durably, with resume.

The same durable subscription as `runway events subscribe --durable NAME`: the NATS consumer
`subscriber-NAME` on the event stream, filtered on the public aggregates' subjects. It prints one
JSON line per public event (the same fields as the CLI, the payload as stored) and acks each stream
message after printing its events, so Ctrl-C and a re-run continue after the last printed event.

    pip install nats-py
    NATS_URL=nats://admin:PASSWORD@127.0.0.1:4222 python3 subscribe.py --durable audit [--from 42] [--type RunFailed]

Environment: NATS_URL (with the credentials of the NATS `admin` user, or any user that may create
consumers on the stream and pull from them), RUNWAY_EVENTS_STREAM (default EVENTS),
RUNWAY_SUBJECT_PREFIX (default none). The public types are read from catalogue.json beside this file.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

CATALOGUE = json.loads((Path(__file__).parent / "catalogue.json").read_text())
PUBLIC = {e["type"]: e for e in CATALOGUE["events"]}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--durable", required=True, help="subscription name (consumer subscriber-NAME)")
    p.add_argument("--from", dest="start", help="stream sequence or ISO time (a new durable only)")
    p.add_argument("--type", action="append", default=[], help="public event type (repeatable)")
    args = p.parse_args()
    for t in args.type:
        if t not in PUBLIC:
            print(f"subscribe.py: --type {t}: not a public event type", file=sys.stderr)
            sys.exit(2)
    return args


def start_of(start):
    if start is None:
        return {"deliver_policy": DeliverPolicy.ALL}
    if start.isdigit():
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": int(start)}
    when = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": when.isoformat()}


async def main():
    args = parse_args()
    types = set(args.type) or set(PUBLIC)
    stream = os.environ.get("RUNWAY_EVENTS_STREAM", "EVENTS")
    prefix = os.environ.get("RUNWAY_SUBJECT_PREFIX", "")
    dot = f"{prefix}." if prefix else ""
    durable = f"subscriber-{args.durable}"

    # NATS_URL may list several servers (a cluster), comma-separated.
    nc = await nats.connect(servers=[u.strip() for u in os.environ["NATS_URL"].split(",") if u.strip()])
    js = nc.jetstream()
    try:
        await js.consumer_info(stream, durable)
    except NotFoundError:
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
                max_ack_pending=1000,
                filter_subjects=[f"{dot}evt.*.{a}.*" for a in CATALOGUE["aggregates"]],
                **start_of(args.start),
            ),
        )
    sub = await js.pull_subscribe_bind(durable, stream=stream)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    while not stop.is_set():
        try:
            msgs = await sub.fetch(100, timeout=1)
        except NatsTimeoutError:
            continue
        # Print and ack every message of a pull before the next one (or the end on Ctrl-C).
        for m in msgs:
            commit = json.loads(m.data)
            agg = commit["aggregate"]
            for index, e in enumerate(commit["events"]):
                if e["type"] not in types:
                    continue  # an internal event of the same aggregate, or a type not asked for
                line = {
                    "type": e["type"],
                    "version": e["version"],
                    "seq": m.metadata.sequence.stream,
                    "index": index,
                    "time": commit["meta"]["time"],
                    "workspace": agg["workspaceId"],
                    "aggregate": {"type": agg["type"], "id": agg["id"]},
                    "correlationId": commit["meta"]["correlationId"],
                    **({"causationId": commit["meta"]["causationId"]} if "causationId" in commit["meta"] else {}),
                    "data": e["data"],
                }
                print(json.dumps(line), flush=True)
            await m.ack_sync()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
