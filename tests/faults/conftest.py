"""The fault-injection suite runs on the local stack like the end-to-end suite, with its fixtures."""

from tests.e2e.conftest import stack, start_stack  # noqa: F401  (pytest fixtures)
