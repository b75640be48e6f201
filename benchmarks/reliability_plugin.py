"""pytest plugin of `benchmarks.reliability`: each test's case (docstring) and outcome, as JSON.

  python -m pytest -p benchmarks.reliability_plugin --reliability-json=OUT.json tests/faults

Writes a list of {nodeid, file, test, case, outcome, seconds, message} in
source order (file, then line), where `case` is the first line of the test's docstring and
`outcome` is one of passed, failed, error (setup or teardown failed),
skipped (with the reason as `message`) and xfailed (a case marked as a known
open failure). Standard library only (plus pytest's hooks).
"""

import json
import os

_DOCS = {}
_ORDER = []  # (file, line, nodeid)
_RESULTS = {}


def pytest_addoption(parser):
  parser.addoption("--reliability-json", default=None,
                   help="Write each test's docstring and outcome to this JSON file.")


def pytest_collection_modifyitems(session, config, items):
  del session, config
  for item in items:
    doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
    _DOCS[item.nodeid] = doc.splitlines()[0].strip() if doc else ""
    file, line, _ = item.location
    _ORDER.append((file, line if line is not None else -1, item.nodeid))


def _message(report) -> str:
  if report.skipped and isinstance(report.longrepr, tuple):
    reason = str(report.longrepr[2])
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
  text = getattr(report, "longreprtext", "") or ""
  errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
  last = text.strip().splitlines()[-1:] or [""]
  return (errors[0] if errors else last[0])[:300]


def pytest_runtest_logreport(report):
  entry = _RESULTS.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0, "message": ""})
  entry["seconds"] += float(getattr(report, "duration", 0.0))
  if hasattr(report, "wasxfail"):
    entry["outcome"], entry["message"] = "xfailed", str(report.wasxfail)
  elif report.failed:
    entry["outcome"] = "failed" if report.when == "call" else "error"
    entry["message"] = _message(report)
  elif report.skipped and entry["outcome"] == "passed":
    entry["outcome"], entry["message"] = "skipped", _message(report)


def pytest_sessionfinish(session, exitstatus):
  del exitstatus
  path = session.config.getoption("--reliability-json")
  if not path:
    return
  rows = []
  for _, _, nodeid in sorted(_ORDER):
    result = _RESULTS.get(nodeid, {"outcome": "not run", "seconds": 0.0, "message": ""})
    file, _, test = nodeid.partition("::")
    rows.append({"nodeid": nodeid, "file": os.path.basename(file), "test": test,
                 "case": _DOCS.get(nodeid, ""), **result})
  with open(path, "w") as fh:
    json.dump(rows, fh, indent=1)
