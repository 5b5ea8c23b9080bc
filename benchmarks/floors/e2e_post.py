"""End-to-end floor: stdlib parse, the same payload shape, HMAC, one http.client POST.

Usage: e2e_post.py REPORT.xml URL  (env: JENKINS_SIGNATURE_SECRET, RUN_ID, BUILD_NUMBER, JOB_NAME)
Prints {"status": HTTP status, "total": cases} as JSON; exits 1 unless the receiver answered 2xx.
"""

import hashlib
import http.client
import json
import os
import sys
import time
from urllib.parse import urlsplit
from xml.etree.ElementTree import iterparse

from _webhook import headers, hmac_key

MAX_MESSAGE = 8000
STATUS_OF = {"failure": "failed", "error": "error", "skipped": "skipped"}


def parse(path: str) -> tuple[list, dict]:
    results = []
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for _event, elem in iterparse(path):
        tag = elem.tag
        if tag == "testcase":
            status, message = "passed", None
            for child in elem:
                if child.tag in STATUS_OF:
                    status = STATUS_OF[child.tag]
                    text = child.text or ""
                    msg = child.get("message") or ""
                    message = (msg + "\n" + text if msg and text else msg or text)[:MAX_MESSAGE]
                    break
            counts[status] += 1
            results.append(
                {
                    "caseId": None,
                    "caseName": elem.get("name"),
                    "className": elem.get("classname"),
                    "status": status,
                    "duration": round(float(elem.get("time") or 0) * 1000),
                    "errorMessage": message,
                }
            )
            elem.clear()
        elif tag == "testsuite":
            elem.clear()
    return results, counts


def main(path: str, url: str) -> int:
    results, counts = parse(path)
    failed = counts["failed"] + counts["error"]
    run_id = os.environ.get("RUN_ID", "")
    build = os.environ.get("BUILD_NUMBER", "")
    payload = {
        "runId": int(run_id) if run_id.isdigit() else run_id or None,
        "status": "failed" if failed else "success",
        "passedCases": counts["passed"],
        "failedCases": failed,
        "skippedCases": counts["skipped"],
        "durationMs": sum(r["duration"] for r in results),
        "results": sorted(results, key=lambda r: r["status"] not in ("failed", "error")),
        "schema": "ci-report/callback/v1",
        "errorCases": counts["error"],
        "totalCases": len(results),
        "build": {"jobName": os.environ.get("JOB_NAME"), "buildNumber": build},
    }
    body = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    ident = f"{os.environ.get('JOB_NAME')}\n{build}\n" + hashlib.sha256(body).hexdigest()
    msg_id = "msg_" + hashlib.sha256(ident.encode()).hexdigest()[:32]
    key = hmac_key(os.environ["JENKINS_SIGNATURE_SECRET"])
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", parts.path, body, headers(key, msg_id, int(time.time()), body))
    response = conn.getresponse()
    response.read()
    conn.close()
    print(json.dumps({"status": response.status, "total": len(results)}))
    return 0 if 200 <= response.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
