"""The README's Python example runs as written (on a small synthetic train.txt)."""

import os
import re

from tests import testing

from ctr_zoo import datasets


class ReadmeExampleTest(testing.TestCase):

  def test_readme_python_example_runs(self):
    with open(os.path.join(testing.PROJECT_ROOT, "README.md")) as fh:
      readme = fh.read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    self.assertTrue(blocks, "README has no python example")
    code = blocks[0]
    directory = self.make_temp_dir()
    datasets.generate_criteo_tsv(os.path.join(directory, "train.txt"), 2000, seed=3)
    cwd = os.getcwd()
    os.chdir(directory)
    try:
      # Small and fast: a smaller batch and tower; everything else as written.
      code = code.replace("batch_size=4096", "batch_size=256")
      namespace = {}
      exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
    finally:
      os.chdir(cwd)
    self.assertTrue(os.path.exists(os.path.join(directory, "dcn_v2.keras")))
    self.assertTrue(os.path.exists(os.path.join(directory, "export", "saved_model.pb")))
    # The serving client example, run where the first example wrote export/.
    self.assertGreaterEqual(len(blocks), 2, "README has no serving client example")
    client = {}
    os.chdir(directory)
    try:
      exec(compile(blocks[1], "README.md", "exec"), client)  # pylint: disable=exec-used
    finally:
      os.chdir(cwd)
    probs = client["probs"].numpy()
    self.assertEqual(probs.shape, (4,))
    self.assertTrue(((probs > 0) & (probs < 1)).all(), probs)
