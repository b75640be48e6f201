"""benchmarks.records: the git revision, JSON lines and paths of every benchmark record."""

import json
import os
import subprocess
from unittest import mock

from tests import testing

from benchmarks import records


def _git(cwd, *args):
  subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60,
                 env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                          GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"))


class GitRevisionTest(testing.TestCase):

  def test_clean_dirty_and_outside_git(self):
    repo = self.make_temp_dir()
    try:
      _git(repo, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
      self.skipTest("git is not available")
    with open(os.path.join(repo, "a.txt"), "w") as fh:
      fh.write("1\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()
    self.assertEqual(records.git_revision(repo), head)
    with open(os.path.join(repo, "untracked.txt"), "w") as fh:
      fh.write("x\n")
    self.assertEqual(records.git_revision(repo), head)  # untracked files do not count
    with open(os.path.join(repo, "a.txt"), "w") as fh:
      fh.write("2\n")
    self.assertEqual(records.git_revision(repo), head + "-dirty")
    self.assertEqual(records.git_revision(self.make_temp_dir()), "unknown")

  def test_machine_description_names_cores_and_tensorflow(self):
    text = records.machine_description()
    self.assertIn(f"{os.cpu_count()} cores", text)
    self.assertRegex(text, r"TF \d+\.\d+")


class JsonLinesTest(testing.TestCase):

  def test_append_then_load_round_trips(self):
    path = os.path.join(self.make_temp_dir(), "deep", "er", "r.jsonl")
    import numpy as np  # pylint: disable=g-import-not-at-top
    records.append_jsonl(path, {"b": 1, "a": np.float32(0.5), "n": np.int64(3)})
    records.append_jsonl(path, {"c": [1, 2]})
    self.assertEqual(records.load_jsonl(path), [{"a": 0.5, "b": 1, "n": 3}, {"c": [1, 2]}])
    with open(path) as fh:
      self.assertEqual(fh.readline(), '{"a": 0.5, "b": 1, "n": 3}\n')  # keys sorted

  def test_bad_lines_are_named(self):
    path = os.path.join(self.make_temp_dir(), "r.jsonl")
    with open(path, "w") as fh:
      fh.write('{"a": 1}\n\n[1, 2]\n')
    with self.assertRaisesRegex(ValueError, r"r.jsonl:3: not a JSON record: a list"):
      records.load_jsonl(path)
    with open(path, "w") as fh:
      fh.write('{"a": 1}\n{oops\n')
    with self.assertRaisesRegex(ValueError, r"r.jsonl:2: not a JSON record"):
      records.load_jsonl(path)

  def test_write_records_goes_to_results_and_the_tracked_file_only_when_asked(self):
    results, other = self.make_temp_dir(), self.make_temp_dir()
    written = records.write_records([{"x": 1}], results, "r.jsonl")
    self.assertEqual(written, [os.path.join(results, "r.jsonl")])
    self.assertEqual(os.listdir(other), [])
    tracked = os.path.join(other, "t.jsonl")
    written = records.write_records([{"x": 2}], results, "r.jsonl", tracked)
    self.assertEqual(written, [os.path.join(results, "r.jsonl"), tracked])
    self.assertEqual(records.load_jsonl(os.path.join(results, "r.jsonl")), [{"x": 1}, {"x": 2}])
    self.assertEqual(records.load_jsonl(tracked), [{"x": 2}])

  def test_write_json_replaces_the_file(self):
    path = os.path.join(self.make_temp_dir(), "r.json")
    records.write_json(path, {"a": 1})
    records.write_json(path, {"a": 2})
    with open(path) as fh:
      self.assertEqual(json.load(fh), {"a": 2})
    self.assertEqual(os.listdir(os.path.dirname(path)), ["r.json"])


class PathsTest(testing.TestCase):

  def test_relative_paths_are_the_users(self):
    with mock.patch.dict(os.environ, {"BUILD_WORKING_DIRECTORY": "/home/u/work"}):
      self.assertEqual(records.user_path("out/r.jsonl"), "/home/u/work/out/r.jsonl")
      self.assertEqual(records.user_path("/abs/r.jsonl"), "/abs/r.jsonl")
      self.assertEqual(records.results_dir("res"), "/home/u/work/res")
    env = {k: v for k, v in os.environ.items() if k != "BUILD_WORKING_DIRECTORY"}
    with mock.patch.dict(os.environ, env, clear=True):
      self.assertEqual(records.user_path("r.jsonl"), os.path.abspath("r.jsonl"))
    self.assertEqual(records.user_path(""), "")
    self.assertEqual(records.results_dir(""), records.DEFAULT_RESULTS_DIR)


class OneGitRevisionTest(testing.TestCase):
  """The import direction is tests/architecture_test.py's; this is the one `git rev-parse`."""

  def test_one_git_revision_in_benchmarks(self):
    owners = []
    directory = os.path.join(testing.PROJECT_ROOT, "benchmarks")
    for name in sorted(os.listdir(directory)):
      if name.endswith(".py"):
        with open(os.path.join(directory, name), encoding="utf-8") as fh:
          if '"rev-parse"' in fh.read():
            owners.append(name)
    self.assertEqual(owners, ["records.py"])


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
