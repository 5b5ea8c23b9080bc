"""Parse floor (stdlib): stream the file with ElementTree.iterparse, clear elements, only count.

Usage: parse_etree.py REPORT.xml -> prints {"total", "failed", "errored", "skipped"} as JSON.
"""

import json
import sys
from xml.etree.ElementTree import iterparse


def main(path: str) -> dict:
    total = failed = errored = skipped = 0
    for _event, elem in iterparse(path):  # "end" events only
        tag = elem.tag
        if tag == "testcase":
            total += 1
            for child in elem:
                kind = child.tag
                if kind == "failure":
                    failed += 1
                    break
                if kind == "error":
                    errored += 1
                    break
                if kind == "skipped":
                    skipped += 1
                    break
            elem.clear()
        elif tag == "testsuite":
            elem.clear()  # drops the (already cleared) cases it still holds
    return {"total": total, "failed": failed, "errored": errored, "skipped": skipped}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
