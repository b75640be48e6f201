"""The CLI targets the test suite imports share one process: no absl flag is defined twice.

(The other benchmark scripts are separate programs, run one per process.)"""

import importlib

from tests import testing

CLI_MODULES = (
    "experiments.train", "experiments.evaluate", "experiments.preprocess", "experiments.predict",
    "experiments.export", "benchmarks.auc",
    "benchmarks.throughput", "benchmarks.sklearn_anchor", "benchmarks.regularization_sweep",
    "benchmarks.cv_sweep",
    "benchmarks.render_readme", "benchmarks.reliability", "benchmarks.serving",
)


class CliFlagsTest(testing.TestCase):

  def test_all_cli_modules_import_together(self):
    for name in CLI_MODULES:
      module = importlib.import_module(name)
      self.assertTrue(callable(getattr(module, "main", None)), f"{name} has no main()")
