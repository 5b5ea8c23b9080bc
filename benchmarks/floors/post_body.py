"""POST floor: one prepared body, HMAC-signed (Standard Webhooks), one http.client POST.

Usage: post_body.py BODY.json URL  (env: JENKINS_SIGNATURE_SECRET, RUN_ID)
Used with ``ci-report callback --dry-run`` to price what a real callback adds on top of parsing
and sending: the result file and its allResults spill. Prints {"status": HTTP status} as JSON.
"""

import hashlib
import http.client
import json
import os
import sys
import time
from urllib.parse import urlsplit

from _webhook import headers, hmac_key


def main(body_path: str, url: str) -> int:
    with open(body_path, "rb") as fh:
        body = fh.read()
    ident = os.environ.get("RUN_ID", "") + "\n" + hashlib.sha256(body).hexdigest()
    msg_id = "msg_" + hashlib.sha256(ident.encode()).hexdigest()[:32]
    key = hmac_key(os.environ["JENKINS_SIGNATURE_SECRET"])
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", parts.path, body, headers(key, msg_id, int(time.time()), body))
    response = conn.getresponse()
    response.read()
    conn.close()
    print(json.dumps({"status": response.status}))
    return 0 if 200 <= response.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
