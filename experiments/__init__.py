"""Experiment targets (train, evaluate, preprocess, benchmark) and named configs."""

import os

# `bazel run` starts binaries inside their runfiles tree; resolve relative
# paths (--data, --model_dir, ...) from the directory the user ran bazel in.
if os.environ.get("BUILD_WORKING_DIRECTORY"):
  os.chdir(os.environ["BUILD_WORKING_DIRECTORY"])
