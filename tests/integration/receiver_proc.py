"""A receiver process with run tracking, for tests that SIGKILL it: ``python receiver_proc.py``.

What ``ci-report receiver --db DB --jenkins-url URL`` runs: settings from the environment
(``CI_REPORT_DB``, ``JENKINS_URL``/``JENKINS_USER``/``JENKINS_TOKEN``, the callback secrets),
``open_tracking`` and ``start_receiver`` on 127.0.0.1, a free port. Prints ``PORT <n>`` once
listening. No reconcile passes (the test's own receiver does those after the "restart").
"""

from __future__ import annotations

import os
import sys

from ci_report.config import load_settings
from ci_report.console import Console
from ci_report.platform.receiver import start_receiver
from ci_report.platform.tracking import open_tracking


def main() -> None:
    settings = load_settings({})
    console = Console(stream=sys.stderr)
    tracking = open_tracking(settings, console=console)
    handle = start_receiver(
        api_keys=[os.environ["JENKINS_API_KEY"]],
        host="127.0.0.1",
        port=0,
        background=False,
        tracking=tracking,
    )
    print(f"PORT {handle.server.server_address[1]}", flush=True)
    handle.serve_forever()


if __name__ == "__main__":
    main()
