"""Helpers shared by the test suites: job types, driver specs, worker processes."""
