"""The FastAPI app: ``POST /reports`` pushes a job with ``await queue.apush(...)``,
``GET /jobs/{id}`` shows its status with ``await queue.astatus/aget``; neither blocks the
event loop. The queue is opened at startup and closed at shutdown (the lifespan), and
handed to the endpoints as a dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from queue_core import JobNotFoundError, Queue, create_queue

from .jobs import BuildReport
from .settings import queue_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.queue = create_queue(queue_settings())
    try:
        yield
    finally:
        app.state.queue.close()


app = FastAPI(lifespan=lifespan)


def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


QueueDep = Annotated[Queue, Depends(get_queue)]


class ReportRequest(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    rows: int = Field(ge=0, le=10_000)


@app.post("/reports", status_code=202)
async def build_report(body: ReportRequest, queue: QueueDep) -> dict[str, Any]:
    job_id = await queue.apush(BuildReport(body.name, body.rows))
    return {"job": job_id}


@app.get("/jobs/{job_id}")
async def job_status(job_id: str, queue: QueueDep) -> dict[str, Any]:
    try:
        info = await queue.aget(job_id)
    except JobNotFoundError:
        # Not stored: finished and no longer kept (keep_completed), which status() reports
        # as done, as it does an id that was never pushed.
        return {"id": job_id, "status": (await queue.astatus(job_id)).value}
    return {"id": job_id, "status": info.status.value, "attempt": info.attempt,
            "result": info.result, "error": info.error and str(info.error)}
