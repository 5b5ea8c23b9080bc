"""Flush floor: send every outbox entry with one POST each on one keep-alive http.client
connection, deleting each file once delivered.

Usage: flush_posts.py OUTBOX_DIR  (env: JENKINS_SIGNATURE_SECRET)
Reads the same files ``ci-report flush`` would (``msg_*.json``, ci-report/outbox/v1: deliveryId,
url, body), signs each with HMAC (fresh timestamp), posts it to its own url. Prints
{"delivered": n, "failed": n} as JSON; exits 1 if any was not answered 2xx.
"""

import json
import os
import sys
import time
from http.client import HTTPConnection
from urllib.parse import urlsplit

from _webhook import headers, hmac_key


def main(directory: str) -> int:
    key = hmac_key(os.environ["JENKINS_SIGNATURE_SECRET"])
    names = sorted(n for n in os.listdir(directory) if n.startswith("msg_") and n.endswith(".json"))
    conn = None
    delivered = failed = 0
    for name in names:
        path = os.path.join(directory, name)
        with open(path, "rb") as fh:
            entry = json.load(fh)
        body = entry["body"].encode("utf-8")
        parts = urlsplit(entry["url"])
        if conn is None:
            conn = HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request(
            "POST", parts.path, body, headers(key, entry["deliveryId"], int(time.time()), body)
        )
        response = conn.getresponse()
        response.read()
        if 200 <= response.status < 300:
            os.unlink(path)
            delivered += 1
        else:
            failed += 1
    if conn is not None:
        conn.close()
    print(json.dumps({"delivered": delivered, "failed": failed}))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
