"""Experiment targets (train, evaluate, preprocess) and named configs; benchmarks live in benchmarks/."""

import os

# The CLI owns the terminal: keep TensorFlow's C++ start-up chatter out of it
# (export TF_CPP_MIN_LOG_LEVEL=0 to see it).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# `bazel run` starts binaries inside their runfiles tree; resolve relative
# paths (--data, --model_dir, ...) from the directory the user ran bazel in.
if os.environ.get("BUILD_WORKING_DIRECTORY"):
  os.chdir(os.environ["BUILD_WORKING_DIRECTORY"])
