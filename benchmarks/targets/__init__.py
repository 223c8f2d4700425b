"""One module per --driver of benchmarks/throughput.py.

Each module defines:

- ``settings(workdir) -> dict``: queue-core settings for the benchmark queue;
- ``peers(workdir, workers=1) -> list[Contender]``: the libraries a user of that back end
  would otherwise pick, measured in the same run (with ``workers`` worker processes when
  ``--workers`` is given);
- ``BACKLOG``: True to compare the per-job cost of draining 10,000 and 100,000 jobs;
- optionally ``extra(args, ours, figures)``: driver-specific measurements, printed and
  added to ``figures``.
"""
