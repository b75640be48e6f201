"""ctr_zoo.optimizers."""
