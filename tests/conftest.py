"""Hooks for the whole suite."""

from judges import pytest_runtest_makereport

__all__ = ["pytest_runtest_makereport"]  # a skip for want of a judge fails under scripts/test
