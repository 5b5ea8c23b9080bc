"""The naive way: junitparser.JUnitXml.fromfile (whole tree in memory) and a loop over every case.

Usage: parse_junitparser.py REPORT.xml -> prints {"total", "failed", "errored", "skipped"} as JSON.
"""

import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite


def main(path: str) -> dict:
    xml = JUnitXml.fromfile(path)
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    total = failed = errored = skipped = 0
    for suite in suites:
        for case in suite:
            total += 1
            _ = (case.name, case.classname, case.time)  # what a payload needs
            for result in case.result:
                if isinstance(result, Failure):
                    failed += 1
                elif isinstance(result, Error):
                    errored += 1
                elif isinstance(result, Skipped):
                    skipped += 1
                else:
                    continue
                _ = (result.message, result.text)
                break
    return {"total": total, "failed": failed, "errored": errored, "skipped": skipped}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
