"""The import graph: no cycles between modules, and no import against the layering.

Layers, lowest first (a module may import its own package, lower packages and
the leaf modules; ctr_zoo/__init__.py imports every subpackage to register
the Keras objects):

  leaf modules   ctr_zoo.checks, ctr_zoo.serialization, ctr_zoo.metrics
  1              ctr_zoo.feature_columns
  2              ctr_zoo.datasets, ctr_zoo.layers, ctr_zoo.optimizers
  3              ctr_zoo.models
  4              ctr_zoo.training
  5              experiments      (the CLI targets; never imported by ctr_zoo)
  6              benchmarks       (records and renders results; imports experiments)
  7              tests

Every import counts, module-level or inside a function.
"""

import ast
import os
import unittest

from tests import testing

LEAVES = {"ctr_zoo.checks", "ctr_zoo.serialization", "ctr_zoo.metrics"}
RANKS = {
    "ctr_zoo.feature_columns": 1,
    "ctr_zoo.datasets": 2, "ctr_zoo.layers": 2, "ctr_zoo.optimizers": 2,
    "ctr_zoo.models": 3,
    "ctr_zoo.training": 4,
    "experiments": 5,
    "benchmarks": 6,
    "tests": 7,
}
ROOTS = ("ctr_zoo", "experiments", "benchmarks", "tests")


def module_files():
  """{module name: path} of every .py file under the project's packages."""
  out = {}
  for root in ROOTS:
    for directory, _, files in os.walk(os.path.join(testing.PROJECT_ROOT, root)):
      if "testdata" in directory or "__pycache__" in directory:
        continue
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(directory, name)
          rel = os.path.relpath(path, testing.PROJECT_ROOT)[:-3].replace(os.sep, ".")
          out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
  return out


def imports_of(path, module, modules):
  """The project modules `path` imports (resolving `from pkg import mod` to pkg.mod)."""
  with open(path) as fh:
    tree = ast.parse(fh.read(), path)
  is_package = path.endswith("__init__.py")
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = module.split(".")
        parent = parts if is_package else parts[:-1]
        parent = parent[:len(parent) - (node.level - 1)]
        base = ".".join(parent + ([base] if base else []))
      names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    else:
      continue
    for name in names:
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name and name != module:
        out.add(name)
  return out


def package_of(module):
  for prefix in sorted(RANKS, key=len, reverse=True):
    if module == prefix or module.startswith(prefix + "."):
      return prefix
  return None


class ImportGraphTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.modules = module_files()
    cls.graph = {m: imports_of(p, m, cls.modules) for m, p in cls.modules.items()}

  def test_no_import_cycles(self):
    state, stack, cycles = {}, [], []

    def visit(m):
      state[m] = "active"
      stack.append(m)
      for n in sorted(self.graph.get(m, ())):
        if n.startswith(m + ".") and m in self.modules and self.modules[m].endswith("__init__.py"):
          continue  # a package's __init__ importing its own modules is not a cycle
        if state.get(n) == "active":
          cycles.append(stack[stack.index(n):] + [n])
        elif n not in state:
          visit(n)
      stack.pop()
      state[m] = "done"

    for m in sorted(self.graph):
      if m not in state:
        visit(m)
    self.assertEqual(cycles, [], "import cycles")

  def test_no_upward_imports(self):
    bad = []
    for m, targets in self.graph.items():
      if m == "ctr_zoo":
        continue  # the package entry point imports every subpackage (registration)
      own = package_of(m)
      for t in targets:
        if t in LEAVES or t == "ctr_zoo":
          if t == "ctr_zoo" and own and own.startswith("ctr_zoo."):
            bad.append(f"{m} -> {t} (library modules import the subpackage they need)")
          continue
        other = package_of(t)
        if other is None or other == own:
          continue
        if own is None or RANKS[other] >= RANKS[own]:
          bad.append(f"{m} ({own}) -> {t} ({other})")
    self.assertEqual(sorted(bad), [], "imports against the layering")

  def test_the_leaves_import_nothing_of_the_project_but_other_leaves(self):
    for leaf in LEAVES:
      if leaf in self.graph:
        self.assertLessEqual(self.graph[leaf], LEAVES - {leaf}, leaf)


if __name__ == "__main__":
  unittest.main()
