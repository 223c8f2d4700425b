"""A tiny shop: placing an order pushes jobs (see jobs.py, orders.py)."""
