"""Gradio's event queue and sessions, kept fair and bounded: installed once by ``app.build_demo``.

- **Pending events per session and per address.** ``demo.queue(max_size=…)`` counts everyone's
  waiting events together, so one client sending 140 events filled it for the class (issue 23). The
  queue's ``push`` (``gradio/queueing.py``: what ``/gradio_api/queue/join`` calls for every event, page
  or API) is wrapped: before an event joins, the events the queue holds (waiting or running) are
  counted for its session and for its address (``classroom.address.client_address``), and an event
  over ``ClassLimits.pending_per_session`` / ``pending_per_address`` is turned away with one line
  (HTTP 503, as Gradio's own "queue is full"). The queue's ``max_size`` is ``queue_size``, well above
  one address's share.
- **Sessions freed when their page leaves.** ``demo.unload`` marks the page closed in
  ``AppContext.sessions``; ``Sessions.sweep`` frees it ``session_grace_s`` later, and with it
  Gradio's own state of that session (its copy of every component's config and every ``gr.State``:
  ~0.9 MB a page, which Gradio keeps an hour after a tab closes and up to 10,000 sessions). Gradio's
  store is held at ``max_sessions`` too (``launch(state_session_capacity=…)`` does the same when the
  app is started through ``app.launch``).
"""

from __future__ import annotations

import gradio as gr

from rlhf_demo.classroom.address import client_address
from rlhf_demo.classroom.class_limits import pending_refusal
from rlhf_demo.ui.context import AppContext, session_of

_ADDRESS = "_rlhf_address"  # the address an event came from, kept on Gradio's Event


def limit_pending(demo: gr.Blocks, ctx: AppContext) -> None:
    """Wrap ``demo``'s queue push once (after ``demo.queue``)."""
    queue = demo._queue
    if getattr(queue, "_rlhf_limited", False):
        return
    queue.max_size = ctx.class_limits.queue_size
    push = queue.push

    async def limited_push(body, request, username):
        address = client_address(request)
        held = [(e.session_hash, getattr(e, _ADDRESS, "")) for e in list(queue.event_ids_to_events.values())]
        why = pending_refusal(held, body.session_hash or "", address, ctx.class_limits)
        if why:
            return False, why[0].upper() + why[1:] + ".", "queue_full"
        ok, event_id, state = await push(body, request, username)
        event = queue.event_ids_to_events.get(event_id) if ok else None
        if event is not None:
            setattr(event, _ADDRESS, address)
        return ok, event_id, state

    queue.push = limited_push
    queue._rlhf_limited = True


def free_gradio_state(demo: gr.Blocks, session: str) -> None:
    """Drop Gradio's per-session state of ``session`` (running its ``gr.State`` delete callbacks)."""
    holder = getattr(demo, "state_holder", None)
    if holder is None or session not in holder:
        return
    holder.delete_state(session)
    with holder.lock:
        holder.session_data.pop(session, None)
        holder.time_last_used.pop(session, None)


def cap_gradio_sessions(demo: gr.Blocks, cap: int) -> None:
    holder = getattr(demo, "state_holder", None)
    if holder is not None and holder.capacity > cap:
        holder.capacity = cap  # its own LRU then drops the least recently used beyond the cap


def free_on_unload(demo: gr.Blocks, ctx: AppContext) -> None:
    """Free a page's sessions after it unloads (call inside ``with demo``)."""
    ctx.sessions.on_free.append(lambda s: free_gradio_state(demo, s))

    def on_unload(request: gr.Request):
        ctx.sessions.close(session_of(request))
        ctx.sessions.sweep()
        cap_gradio_sessions(demo, ctx.class_limits.max_sessions)

    demo.unload(on_unload)
