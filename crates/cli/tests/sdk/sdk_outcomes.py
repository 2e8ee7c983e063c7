"""A pytest plugin for run.sh: writes one line per test, `OUTCOME NODEID`,
to the file named by SDK_OUTCOMES. A test whose setup or tear-down failed
is an `error`, one whose call failed a `failed` (an expected failure,
`xfail`, is neither)."""

import os

_outcomes = {}


def pytest_runtest_logreport(report):
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        outcome = "failed" if report.when == "call" else "error"
        if previous != "failed":
            _outcomes[report.nodeid] = outcome
    elif report.skipped and previous is None:
        _outcomes[report.nodeid] = (
            "xfailed" if hasattr(report, "wasxfail") else "skipped"
        )
    elif report.when == "call" and previous is None:
        _outcomes[report.nodeid] = (
            "xpassed" if hasattr(report, "wasxfail") else "passed"
        )


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("SDK_OUTCOMES")
    if not path:
        return
    with open(path, "w") as f:
        for nodeid, outcome in sorted(_outcomes.items()):
            f.write(f"{outcome} {nodeid}\n")
