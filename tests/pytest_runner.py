"""Runs the test files given as arguments under pytest: the entry point of every Bazel py_test."""

import os
import sys

import pytest

if __name__ == "__main__":
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  sys.exit(pytest.main(["-q", "-p", "no:cacheprovider"] + sys.argv[1:]))
