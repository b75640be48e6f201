"""ctr_zoo.layers."""
