"""pytest_test: a py_test that runs test files under pytest (tests/pytest_runner.py)."""

def pytest_test(name, files, **kwargs):
    """One py_test running `files` (paths relative to this package) in one pytest process."""
    if not files:
        fail("pytest_test %s: no test files (pytest would collect the whole suite)" % name)
    native.py_test(
        name = name,
        size = "large",
        srcs = files + ["pytest_runner.py"],
        args = ["$(location %s)" % f for f in files],
        # README.md: the README's example is run; pyproject.toml: its fields are checked.
        data = native.glob(["testdata/**"]) + ["//:README.md", "//:pyproject.toml"],
        main = "pytest_runner.py",
        deps = [
            ":testing",
            "//benchmarks:lib",
            "//experiments:lib",
        ],
        **kwargs
    )
