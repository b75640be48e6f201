"""pytest configuration: import ctr_zoo first so tf.keras is tf-keras everywhere."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ctr_zoo  # noqa: E402,F401
