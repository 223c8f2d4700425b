"""Run inside the example project (DJANGO_SETTINGS_MODULE set), in a process of its own so
that the test process's Django stays unconfigured: place orders through Django's test
Client, some committed and some rolled back, with each way of pushing; then wait until the
worker has confirmed the committed ones. Prints a JSON report on its last line."""

from __future__ import annotations

import json
import sys
import time

import django

ORDERS = [
    # (form, committed): a rolled-back order comes first each time, so that a job leaked by
    # it would be taken before the committed one the scenario waits for.
    ({"item": "car", "quantity": "99"}, False),
    ({"item": "book", "quantity": "1"}, True),
    ({"item": "boat", "quantity": "50", "push": "in_transaction"}, False),
    ({"item": "pen", "quantity": "2", "push": "in_transaction"}, True),
]


def main() -> None:
    django.setup()
    from django.test import Client

    client = Client()
    placed = []
    for form, committed in ORDERS:
        response = client.post("/orders/", form)
        assert response.status_code == (201 if committed else 409), response.content
        if committed:
            placed.append(response.json()["order"])
    deadline = time.monotonic() + float(sys.argv[1])
    statuses: dict[int, str] = {}
    while time.monotonic() < deadline:
        statuses = {order: client.get(f"/orders/{order}/").json()["status"]
                    for order in placed}
        if all(status == "confirmed" for status in statuses.values()):
            break
        time.sleep(0.05)
    print(json.dumps({"placed": placed, "statuses": statuses}))


if __name__ == "__main__":
    main()
