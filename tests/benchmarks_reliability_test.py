"""benchmarks.reliability: test outcomes and docstrings -> the README's reliability table."""

import json
import os
import textwrap

from tests import testing

from benchmarks import reliability

FAKE_SUITE = '''
import unittest


class Cases(unittest.TestCase):

  def test_a_handled(self):
    """A handled case | with a pipe."""

  def test_b_open(self):
    """An open case."""
    self.assertEqual(1, 2)

  @unittest.skip("needs a GPU")
  def test_c_skipped(self):
    """A case that cannot run here."""

  @unittest.expectedFailure
  def test_d_known_open(self):
    """A known open case.

    More text that is not the case.
    """
    raise ValueError("still broken")

  def test_e_no_docstring(self):
    pass
'''


class ReliabilityTest(testing.TestCase):

  def test_runs_a_suite_and_renders_each_case_with_its_outcome(self):
    folder = self.make_temp_dir()
    with open(os.path.join(folder, "faults_demo_test.py"), "w") as fh:
      fh.write(FAKE_SUITE)
    rows = reliability.run_suite(folder)
    self.assertEqual([(r["test"], r["outcome"]) for r in rows], [
        ("Cases::test_a_handled", "passed"), ("Cases::test_b_open", "failed"),
        ("Cases::test_c_skipped", "skipped"), ("Cases::test_d_known_open", "xfailed"),
        ("Cases::test_e_no_docstring", "passed")])
    self.assertEqual(rows[3]["case"], "A known open case.")
    self.assertIn("1 != 2", rows[1]["message"])
    table = reliability.markdown({"time": "T", "git_revision": "abc", "machine": "M",
                                  "tests": rows})
    self.assertIn("5 cases tried by the fault-injection suite (`tests/faults/`): 2 handled "
                  "correctly, 2 still open, 1 not run.", table)
    lines = table.splitlines()
    self.assertIn("| demo | A handled case \\| with a pipe. | handled correctly |", lines)
    self.assertIn("| demo | An open case. | still open |", lines)
    self.assertIn("| demo | A case that cannot run here. | not run (needs a GPU) |", lines)
    self.assertIn("| demo | A known open case. | still open |", lines)
    self.assertIn("| demo | Cases::test_e_no_docstring | handled correctly |", lines)

  def test_replaces_only_the_block_and_reports_a_missing_one(self):
    directory = self.make_temp_dir()
    record = os.path.join(directory, "reliability.json")
    with open(record, "w") as fh:
      json.dump({"time": "T", "git_revision": "abc", "machine": "M", "tests": [
          {"file": "faults_run_test.py", "test": "X::test_x", "case": "Case x.",
           "outcome": "passed", "message": ""}]}, fh)
    readme = os.path.join(directory, "README.md")
    with open(readme, "w") as fh:
      fh.write(textwrap.dedent("""\
          before
          <!-- reliability-table:begin -->
          old
          <!-- reliability-table:end -->
          after
          """))
    self.assertTrue(reliability.render_readme(readme, record))
    with open(readme) as fh:
      text = fh.read()
    self.assertTrue(text.startswith("before\n<!-- reliability-table:begin -->\n1 cases tried"))
    self.assertIn("| training runs | Case x. | handled correctly |\n<!-- reliability-table:end "
                  "-->\nafter\n", text)
    with open(readme, "w") as fh:
      fh.write("no block here\n")
    self.assertFalse(reliability.render_readme(readme, record))

  def test_every_fault_test_has_a_one_line_case(self):
    import ast  # pylint: disable=g-import-not-at-top
    folder = os.path.join(testing.PROJECT_ROOT, "tests", "faults")
    for name in sorted(os.listdir(folder)):
      if not (name.startswith("faults_") and name.endswith("_test.py")):
        continue
      with open(os.path.join(folder, name)) as fh:
        tree = ast.parse(fh.read())
      for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
          doc = ast.get_docstring(node)
          self.assertTrue(doc, f"{name}: {node.name} has no docstring (its case)")
          self.assertTrue(doc.splitlines()[0].strip(), f"{name}: {node.name}")
