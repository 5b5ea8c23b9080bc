"""Parse floor (lxml): stream the file with lxml.etree.iterparse, clear elements, only count.

Usage: parse_lxml.py REPORT.xml -> prints {"total", "failed", "errored", "skipped"} as JSON.
"""

import json
import sys

from lxml import etree


def main(path: str) -> dict:
    total = failed = errored = skipped = 0
    for _event, elem in etree.iterparse(path, events=("end",), tag="testcase"):
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
        # the usual lxml streaming idiom: clear this case and drop the finished siblings
        elem.clear(keep_tail=True)
        parent = elem.getparent()
        while elem.getprevious() is not None:
            del parent[0]
    return {"total": total, "failed": failed, "errored": errored, "skipped": skipped}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
