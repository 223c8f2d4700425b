"""A FastAPI app that pushes jobs with the async API (see README.md here to run it)."""
