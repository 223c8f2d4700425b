"""The example's table and job. The job runs in a worker inside the app's context
(``flask queue listen`` gives it one), so it reaches the app's database as a view does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, update

from queue_core import RetryableJob

tables = MetaData()
signups = Table(
    "signups", tables,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), unique=True, nullable=False),
    Column("welcomed", Boolean, nullable=False, default=False),
)


@dataclass
class SendWelcome(RetryableJob):
    email: str

    def execute(self, queue: Any) -> None:
        # A real app would send the e-mail here; the example records that it ran.
        with current_app.extensions["example_db"].begin() as conn:
            conn.execute(update(signups).where(signups.c.email == self.email)
                         .values(welcomed=True))
