"""The pages: overview, job lists, a job's detail, the confirmation of an action.

Each view returns markup built with ``html.render``, so every stored value is escaped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..model import JobInfo, JobStatus
from ..queue import Queue
from . import data
from .chart import bar_chart
from .html import Safe, join, render, when
from .http import Request

LIST_LIMIT = 200


@dataclass
class Context:
    """What every page needs besides its data."""

    request: Request
    csrf: str
    read_only: bool
    flash: str = ""


def layout(ctx: Context, title: str, body: Safe) -> Safe:
    req = ctx.request
    mode = Safe('<span class="badge">read-only</span>') if ctx.read_only else Safe("")
    flash = render('<p class="flash" id="flash">{m}</p>', m=ctx.flash) if ctx.flash else Safe("")
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} · queue-core</title>"
        '<link rel="stylesheet" href="{css}">'
        '<script src="{js}" defer></script></head><body>'
        '<header><a class="brand" href="{home}">queue-core dashboard</a> {mode}</header>'
        "<main>{flash}<h1>{title}</h1>{body}</main></body></html>",
        title=title, css=req.url("static", "dashboard.css"),
        js=req.url("static", "dashboard.js"), home=req.url(), mode=mode, flash=flash,
        body=body)


def action_form(ctx: Context, url: str, label: str, question: str,
                css: str = "") -> Safe:
    """A POST button with the CSRF token. ``confirmed`` stays 0 without script, and the
    server answers with a confirmation page; dashboard.js asks first and sends 1."""
    if ctx.read_only:
        return Safe("")
    return render(
        '<form method="post" action="{url}" class="action" data-confirm="{question}">'
        '<input type="hidden" name="csrf" value="{csrf}">'
        '<input type="hidden" name="confirmed" value="0">'
        '<button type="submit" class="{css}">{label}</button></form>',
        url=url, question=question, csrf=ctx.csrf, css=css, label=label)


def _counts_table(ctx: Context, name: str, found: dict[JobStatus, int] | data.Unavailable
                  ) -> Safe:
    if isinstance(found, data.Unavailable):
        return render('<p class="na">counts not available: {r}</p>', r=found.reason)
    cells = []
    for status in JobStatus:
        value = found.get(status)
        link = ctx.request.url("q", name, "jobs", status.value)
        cells.append(render(
            '<tr><th><a href="{link}">{status}</a></th>'
            '<td id="count-{name}-{status}" class="num">{value}</td></tr>',
            link=link, status=status.value, name=name,
            value="not countable" if value is None else value))
    return render('<table class="counts">{rows}</table>', rows=join(cells))


def _oldest(name: str, found: float | None | data.Unavailable) -> Safe:
    if isinstance(found, data.Unavailable):
        return Safe("")  # nothing to tell where the driver cannot
    return render('<p class="oldest">Oldest waiting job: <span id="oldest-{name}">{age}</span>'
                  "</p>", name=name, age="none waits" if found is None
                  else f"pushed {found:.0f} s ago")


def _workers(ctx: Context, name: str, rows: list[data.WorkerRow] | None) -> Safe:
    if rows is None:
        return Safe("")  # the driver stores no heartbeats: nothing to say
    if not rows:
        return Safe('<h3>Workers</h3><p class="na">no workers reported</p>')
    body = join(render(
        '<tr class="{css}"><td>{host}</td><td>{pid}</td><td>{state}</td>'
        '<td class="num">{beat}</td><td>{jobs}</td><td class="num">{done}</td>'
        '<td class="num">{failed}</td><td class="num">{memory}</td></tr>',
        css="stale" if row.state != "live" else "", host=row.host, pid=row.pid,
        state=row.state, beat=f"{row.last_beat:.0f} s ago",
        jobs=join(render('<a href="{u}">{i}</a> {n} ({s}) ',
                         u=ctx.request.url("q", name, "job", job.id), i=job.id, n=job.name,
                         s=f"{job.seconds:.0f} s") for job in row.jobs) or "idle",
        done=row.done, failed=row.failed,
        memory="-" if row.memory_mb is None else f"{row.memory_mb:.0f} MB") for row in rows)
    return render('<h3>Workers</h3><table class="list"><tr><th>host</th><th>pid</th>'
                  "<th>state</th><th>last beat</th><th>current jobs</th><th>done</th>"
                  "<th>failed</th><th>memory</th></tr>{body}</table>", body=body)


def overview(ctx: Context, queues: dict[str, Queue]) -> Safe:
    sections = []
    for name, queue in queues.items():
        chart_data = data.throughput(queue)
        if isinstance(chart_data, data.Unavailable):
            chart = render('<p class="na">jobs per minute: {r}</p>', r=chart_data.reason)
        else:
            chart = render('{svg}<p class="source">Source: {src}.</p>',
                           svg=bar_chart(chart_data, f"jobs per minute, {name}"),
                           src=chart_data.source)
        actions = Safe("")
        if queue.capabilities.manual_retry and data.listable(queue, JobStatus.FAILED):
            actions = action_form(ctx, ctx.request.url("q", name, "retry-failed"),
                                  "Retry all failed", f"Retry every failed job of {name}?")
        if queue.capabilities.clear:
            actions = join([actions, action_form(
                ctx, ctx.request.url("q", name, "clear"), "Clear queue",
                f"Delete every job of {name}? This cannot be undone.", "danger")])
        sections.append(render(
            '<section class="queue" id="queue-{name}"><h2>{name} '
            '<small>{where}</small></h2>{counts}{oldest}<div class="actions">{actions}</div>'
            "<h3>Jobs per minute, last hour</h3>{chart}{workers}</section>",
            name=name, where=queue.driver.describe(),
            counts=_counts_table(ctx, name, data.counts(queue)),
            oldest=_oldest(name, data.oldest_waiting(queue)), actions=actions,
            chart=chart, workers=_workers(ctx, name, data.workers(queue))))
    return layout(ctx, "Overview", join(sections))


def _first_line(info: JobInfo) -> str:
    if info.error is None:
        return "-"
    return (str(info.error).splitlines() or ["?"])[0][:200]


def job_list(ctx: Context, name: str, queue: Queue, status: JobStatus) -> Safe:
    found = data.jobs(queue, status, LIST_LIMIT)
    if isinstance(found, data.Unavailable):
        return layout(ctx, f"{name}: {status} jobs",
                      render('<p class="na">not available: {r}</p>', r=found.reason))
    rows = []
    for info in found:
        rows.append(render(
            '<tr class="job"><td><a href="{link}">{id}</a></td><td>{job}</td>'
            '<td class="num">{attempt}</td><td>{finished}</td><td class="error">{error}</td>'
            "</tr>{trace}",
            link=ctx.request.url("q", name, "job", info.id), id=info.id,
            job=info.job_name or "?", attempt=info.attempt, finished=when(info.finished_at),
            error=_first_line(info),
            trace=render('<tr class="trace"><td colspan="5"><details><summary>traceback'
                         "</summary><pre>{t}</pre></details></td></tr>", t=info.error.traceback)
            if info.error is not None and info.error.traceback else Safe("")))
    note = render("<p>{n} shown (at most {limit}).</p>", n=len(found), limit=LIST_LIMIT)
    table = render('<table class="list" id="jobs"><tr><th>id</th><th>job</th><th>attempts</th>'
                   "<th>finished</th><th>error</th></tr>{rows}</table>", rows=join(rows)) \
        if rows else Safe('<p class="na">no jobs</p>')
    actions = Safe("")
    if status is JobStatus.FAILED and rows and queue.capabilities.manual_retry:
        actions = action_form(ctx, ctx.request.url("q", name, "retry-failed"),
                              "Retry all failed", f"Retry every failed job of {name}?")
    return layout(ctx, f"{name}: {status} jobs", join([note, actions, table]))


def _payload(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _result(value: object) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def job_detail(ctx: Context, name: str, queue: Queue, info: JobInfo) -> Safe:
    fields = [("status", info.status.value), ("job", info.job_name or "?"), ("id", info.id),
              ("attempt", info.attempt), ("priority", info.priority), ("ttr", info.ttr),
              ("pushed", when(info.pushed_at)), ("started", when(info.started_at)),
              ("finished", when(info.finished_at))]
    if info.ready_at:
        fields.append(("ready at", when(info.ready_at)))
    if info.progress is not None:
        shown = f"{info.progress.fraction * 100:.1f}%"
        if info.progress.message:
            shown += f" {info.progress.message}"
        fields.append(("progress", f"{shown} (at {when(info.progress.at)})"))
    table = join(render('<tr><th>{k}</th><td id="field-{slug}">{v}</td></tr>', k=key,
                        slug=key.replace(" ", "-"), v="-" if value is None else value)
                 for key, value in fields)
    parts = [render('<table class="fields">{t}</table>', t=table)]
    if info.error is not None:
        parts.append(render('<h2>Error</h2><p class="error" id="error">{e}</p>'
                            '<pre id="traceback">{t}</pre>',
                            e=str(info.error), t=info.error.traceback or "(no traceback)"))
    if info.result is not None:
        parts.append(render('<h2>Result</h2><pre id="result">{r}</pre>',
                            r=_result(info.result)))
    parts.append(render('<h2>Payload</h2><pre id="payload">{p}</pre>',
                        p=_payload(info.payload) if info.payload else "(not stored)"))
    actions = []
    if info.status in (JobStatus.FAILED, JobStatus.DONE) and queue.capabilities.manual_retry \
            and (info.status is JobStatus.FAILED or queue.capabilities.keep_completed):
        actions.append(action_form(ctx, ctx.request.url("q", name, "job", info.id, "retry"),
                                   "Retry", f"Send job {info.id} back to waiting?"))
    if queue.capabilities.cancel and info.status in (
            JobStatus.WAITING, JobStatus.DELAYED, JobStatus.RESERVED):
        actions.append(action_form(ctx, ctx.request.url("q", name, "job", info.id, "cancel"),
                                   "Cancel", f"Cancel job {info.id}?", "danger"))
    if queue.capabilities.remove:
        actions.append(action_form(ctx, ctx.request.url("q", name, "job", info.id, "remove"),
                                   "Remove", f"Delete job {info.id}?", "danger"))
    parts.insert(1, render('<div class="actions">{a}</div>', a=join(actions)))
    return layout(ctx, f"Job {info.id}", join(parts))


def not_stored(ctx: Context, name: str, job_id: str, status: JobStatus | None) -> Safe:
    said = ("finished and not kept, or never existed" if status in (None, JobStatus.DONE)
            else str(status))
    return layout(ctx, f"Job {job_id}", render(
        '<p class="na">job {id} of {name} is not stored ({said}).</p>', id=job_id, name=name,
        said=said))


def confirm(ctx: Context, url: str, question: str) -> Safe:
    """The no-script fallback: the same POST again, this time confirmed."""
    return layout(ctx, "Please confirm", render(
        '<p id="question">{q}</p><form method="post" action="{url}">'
        '<input type="hidden" name="csrf" value="{csrf}">'
        '<input type="hidden" name="confirmed" value="1">'
        '<button type="submit" id="confirm">Yes, do it</button> '
        '<a href="{back}">Cancel</a></form>',
        q=question, url=url, csrf=ctx.csrf, back=ctx.request.url()))
