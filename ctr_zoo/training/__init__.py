"""ctr_zoo.training."""
