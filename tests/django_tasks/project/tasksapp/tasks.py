"""The tasks the tests enqueue; found by the worker's autodiscovery of INSTALLED_APPS."""

from django_tasks import task


@task(priority=10)
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@task(takes_context=True)
def flaky(context, until: int) -> int:  # type: ignore[no-untyped-def]
    """Fails every attempt before ``until``."""
    if context.attempt < until:
        raise ConnectionError(f"attempt {context.attempt}: the service is down")
    return context.attempt


@task(queue_name="reports")
def always_fails() -> None:
    raise ValueError("the report template is missing")
