"""ctr_zoo.models."""
