"""experiments: the CLI targets (train, evaluate, preprocess, benchmark) and named configs."""
