"""The end of a rebalance without a window in which Faust can drop the event at the committed offset.

Faust's recovery ends a rebalance in `Recovery.on_recovery_completed` (and, for an app without tables,
`Recovery._resume_streams`; faust-streaming 0.15): it resumes fetching for the stream partitions, then seeks
them to their committed offsets, and only then reactivates flow control. The seek is awaited through
`Recovery._wait`, a separate task, so the fetcher and the streams run in between: an event fetched from the
committed offset then may reach its stream while flow control is inactive and be skipped (never processed,
never acknowledged, and, the fetcher having moved its read offset past it, not fetched again), and an event
taken before the seek is checked against no committed offset at all (agents/ordering.py). Faust's commit
then jumps the hole. In the chaos test's runs beside a CPU hog, gaps of one to three offsets at a
partition's start were seen without this change and none with it (larger gaps, a whole fetch, were seen in
both: agents/ordering.py stops the worker on those).

`resume_in_order` replaces both methods on the app's recovery with the same steps in an order without that
window: seek while the stream partitions are still paused (nothing is fetched for them), reactivate flow
control, and only then resume fetching them.
"""

from __future__ import annotations

import asyncio
import logging
import types
from typing import Any, cast

import faust

log = logging.getLogger("rote.agents")


async def _start_streams(self: Any, generation_id: int) -> bool:
    """Seek the (still paused) stream partitions, reactivate flow control, then resume fetching them. False
    when a newer rebalance has begun (the streams then stay paused for it)."""
    app = self.app
    consumer = app.consumer
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again (generation %s)", app.consumer_generation_id)
        return False
    if assignment:
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    self.completed.set()
    self.log.info("Resuming flow...")
    app.flow_control.resume()
    consumer.resume_flow()
    streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
    if streams:
        self.log.dev("Resume stream partitions")
        consumer.resume_partitions(streams)
    await cast(Any, app)._fetcher.maybe_start()  # make sure the fetcher is running
    return True


async def _on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """Faust 0.15's `Recovery.on_recovery_completed`, the streams started by `_start_streams`."""
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    if not await _start_streams(self, generation_id):
        return
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _resume_streams(self: Any, generation_id: int = 0) -> None:
    """Faust 0.15's `Recovery._resume_streams` (no tables), the streams started by `_start_streams`."""
    await self.app.on_rebalance_complete.send()
    if not await _start_streams(self, generation_id):
        return
    self.tables.on_actives_ready()
    self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


def resume_in_order(app: faust.App) -> None:
    """Install the reordered methods on the app's table recovery (before the worker starts)."""
    recovery = cast(Any, app).tables.recovery
    methods = {"on_recovery_completed": _on_recovery_completed, "_resume_streams": _resume_streams}
    for name, method in methods.items():
        if not hasattr(recovery, name):  # a Faust this was not written against: say so, loudly
            log.error("faust's Recovery has no %s: an event may be skipped after a rebalance", name)
            continue
        setattr(recovery, name, types.MethodType(method, recovery))
