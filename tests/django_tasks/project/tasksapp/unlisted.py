"""A module no setting names: a worker must never import it because a payload names it.
Importing it leaves a mark the test looks for."""

import os
from pathlib import Path

Path(os.environ["QUEUE_TEST_MARK"]).write_text("imported")


def run() -> str:
    return "ran"
