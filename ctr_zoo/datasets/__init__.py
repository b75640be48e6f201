"""ctr_zoo.datasets."""
