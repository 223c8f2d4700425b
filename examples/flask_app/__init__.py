"""A Flask app on queue_core.contrib.flask (see README.md here to run it).

``POST /signups`` saves a sign-up and queues its welcome job in one SQLAlchemy
transaction (the db driver on the app's own database): an e-mail address already signed up
rolls both back, so no job is left behind. ``GET /jobs/<id>`` shows a job's status and
``GET /signups/<id>`` whether the welcome job has run.

Configuration comes from ``FLASK_*`` environment variables (``FLASK_DATABASE_URL``), so a
worker started with ``flask --app examples.flask_app queue listen`` uses the same database.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from queue_core import JobNotFoundError
from queue_core.contrib.flask import QueueCore

from .jobs import SendWelcome, signups, tables

queues = QueueCore()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["DATABASE_URL"] = "sqlite:///flask-example.db"
    app.config.from_prefixed_env()
    app.config.update(config or {})
    # The queue's table sits in the app's database: that is what lets a push join the
    # app's transaction (docs/transactions.md).
    app.config.setdefault("QUEUE_CORE", {
        "default": {"driver": app.config["DATABASE_URL"], "attempts": 3,
                    "imports": ["examples.flask_app.jobs"]},
    })
    engine = create_engine(app.config["DATABASE_URL"])
    tables.create_all(engine)
    app.extensions["example_db"] = engine
    queues.init_app(app)
    register_views(app)
    return app


def database() -> Engine:
    from flask import current_app
    engine: Engine = current_app.extensions["example_db"]
    return engine


def register_views(app: Flask) -> None:
    @app.post("/signups")
    def sign_up() -> tuple[dict[str, Any], int]:
        email = (request.get_json(silent=True) or request.form).get("email", "")
        if "@" not in email:
            abort(400, "an e-mail address is needed")
        try:
            with Session(database()) as session, session.begin():
                job_id = queues.queue.push(SendWelcome(email), connection=session)
                signup_id = session.execute(
                    insert(signups).values(email=email).returning(signups.c.id)).scalar_one()
        except IntegrityError:
            # Rolled back: neither the sign-up nor its job was written.
            return {"error": f"{email} is already signed up"}, 409
        return {"signup": signup_id, "job": job_id}, 201

    @app.get("/signups/<int:signup_id>")
    def signup(signup_id: int) -> dict[str, Any]:
        with database().connect() as conn:
            row = conn.execute(select(signups).where(signups.c.id == signup_id)).one_or_none()
        if row is None:
            abort(404)
        return {"id": row.id, "email": row.email, "welcomed": row.welcomed}

    @app.get("/jobs/<job_id>")
    def job(job_id: str) -> dict[str, Any]:
        queue = queues.queue
        shown: dict[str, Any] = {"id": job_id, "status": queue.status(job_id).value}
        try:
            info = queue.get(job_id)
        except JobNotFoundError:  # finished and not kept (keep_completed), or never pushed
            return shown
        shown.update(attempt=info.attempt, error=info.error and str(info.error))
        return shown
