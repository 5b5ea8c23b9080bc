"""A fake Jenkins controller (stdlib threaded HTTP server) with the documented queue semantics.

Follows Jenkins' remote API, on a compressed clock (quiet periods and builds last
fractions of a second):

- ``POST job/X/buildWithParameters`` -> 201 + ``Location: /queue/item/N/``; an identical
  request while the item still waits -> 303 to the same item; ``GET`` -> 405; a job without
  parameters -> 400 "is not parameterized"; a disabled job -> 409; undefined parameters dropped.
- queue items: ``WaitingItem`` (quiet period, ``why`` "In the quiet period. Expires in ..."),
  ``BlockedItem`` (non-concurrent job already building), ``BuildableItem`` (label offline ->
  ``stuck``), ``LeftItem`` (``executable`` or ``cancelled``); left items expire after
  ``left_ttl`` seconds -> 404, and are forgotten on a restart.
- builds: ``building`` true until their duration passes, then ``result``; ``queueId``;
  ``testReport/api/json``; ``artifact/...``; ``stop``.
- crumbs: with ``require_crumb``, a POST without the session's crumb -> 403 "No valid crumb".
- ``restart()``: the port closes (connection refused), then the server comes back on it.
- ``hang_trigger``: the next trigger queues the item, then answers only after that many seconds.
- ``log``: ``(method, path, status)`` of each request, written when it is answered;
  ``received``: ``(method, path)`` written when a request arrives, before it is handled, and
  ``in_flight``: requests received and not yet answered (observe ``idle()`` instead of sleeping).
- ``cancel_waiting(job)`` (a person cancels queue items), ``forget_left()`` (left items expire or
  a restart forgets them), ``delete_job(name)``, ``items_of(job)``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass
class FakeBuild:
    job: FakeJob
    number: int
    queue_id: int
    params: list[tuple[str, str]]
    started: float
    duration: float
    result: str
    test_report: Optional[dict[str, Any]] = None
    artifacts: dict[str, bytes] = field(default_factory=dict)
    stopped: bool = False
    early_result: Optional[str] = None  # a Pipeline that set currentBuild.result while running
    git_commit: Optional[str] = None

    def building(self, now: float) -> bool:
        return not self.stopped and now < self.started + self.duration


@dataclass
class FakeJob:
    name: str
    params: Optional[list[str]] = None  # None: not parameterized
    quiet_period: float = 0.0
    duration: float = 0.2
    results: list[str] = field(default_factory=list)  # popped per build; default SUCCESS
    concurrent: bool = True
    label_offline: bool = False
    buildable: bool = True
    test_report: Optional[dict[str, Any]] = None
    artifacts: dict[str, bytes] = field(default_factory=dict)
    executable_delay: float = 0.0  # LeftItem without executable for this long
    builds: dict[int, FakeBuild] = field(default_factory=dict)
    next_number: int = 1


@dataclass
class QueueItem:
    id: int
    job: FakeJob
    params: list[tuple[str, str]]
    queued: float
    due: float
    state: str = "waiting"  # waiting|blocked|buildable|left
    why: Optional[str] = None
    stuck: bool = False
    cancelled: bool = False
    left_at: Optional[float] = None
    build: Optional[FakeBuild] = None
    causes: int = 1


class FakeJenkins:
    def __init__(
        self,
        *,
        user: Optional[str] = "ci",
        token: str = "jenkins-api-token-123",
        require_crumb: bool = False,
        left_ttl: float = 300.0,
        executors: int = 4,
        root_url: Optional[str] = None,
    ) -> None:
        self.user = user
        self.token = token
        self.require_crumb = require_crumb
        self.left_ttl = left_ttl
        self.executors = executors
        self.root_url_override = root_url
        self.jobs: dict[str, FakeJob] = {}
        self.queue: dict[int, QueueItem] = {}
        self.lock = threading.RLock()
        self.ids = itertools.count(100)
        self.log: list[tuple[str, str, int]] = []  # when answered
        self.received: list[tuple[str, str]] = []  # when they arrive
        self.in_flight = 0
        self.hang_trigger: float = 0.0
        self.sessions: dict[str, str] = {}  # JSESSIONID -> crumb
        self.connections: set[socket.socket] = set()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def root_url(self) -> str:
        return self.root_url_override or self.url

    def start(self) -> FakeJenkins:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open (keep-alive) connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            connections, self.connections = set(self.connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def restart(self, down_for: float) -> None:
        """Stop (connection refused), forget left items (in-memory cache), come back."""
        self.stop()
        time.sleep(down_for)
        with self.lock:
            for qid in [q for q, item in self.queue.items() if item.state == "left"]:
                del self.queue[qid]
        self.start()

    def __enter__(self) -> FakeJenkins:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- set-up --------------------------------------------------------------------------
    def add_job(self, name: str, **kw: Any) -> FakeJob:
        job = FakeJob(name=name, **kw)
        self.jobs[name] = job
        return job

    def add_build(
        self,
        job: FakeJob,
        *,
        result: str = "SUCCESS",
        building: bool = False,
        params: Optional[list[tuple[str, str]]] = None,
        test_report: Optional[dict[str, Any]] = None,
        artifacts: Optional[dict[str, bytes]] = None,
        duration: float = 12.5,
        git_commit: Optional[str] = None,
    ) -> FakeBuild:
        """A build that already exists (for sync)."""
        with self.lock:
            now = time.monotonic()
            build = FakeBuild(
                job=job,
                number=job.next_number,
                queue_id=next(self.ids),
                params=params or [],
                started=now - (0 if building else duration),
                duration=3600 if building else duration,
                result=result,
                test_report=test_report,
                artifacts=dict(artifacts or {}),
                git_commit=git_commit,
            )
            job.builds[build.number] = build
            job.next_number += 1
            return build

    def items_of(self, job: FakeJob) -> list[QueueItem]:
        with self.lock:
            self.tick()
            return [i for i in self.queue.values() if i.job is job]

    def cancel_waiting(self, job: FakeJob) -> list[int]:
        """A person cancels the job's waiting items in the Jenkins UI."""
        with self.lock:
            self.tick()
            ids = []
            for item in self.queue.values():
                if item.job is job and item.state != "left":
                    item.state, item.cancelled, item.left_at = "left", True, time.monotonic()
                    ids.append(item.id)
            return ids

    def forget_left(self, job: Optional[FakeJob] = None) -> list[int]:
        """Jenkins forgets left items (5 min after leaving, or a restart): their URL -> 404."""
        with self.lock:
            self.tick()
            gone = [
                qid
                for qid, item in self.queue.items()
                if item.state == "left" and (job is None or item.job is job)
            ]
            for qid in gone:
                build = self.queue[qid].build
                if build is not None:
                    build.job.builds.setdefault(build.number, build)
                del self.queue[qid]
            return gone

    def delete_job(self, name: str) -> None:
        with self.lock:
            self.jobs.pop(name, None)

    def all_done(self) -> bool:
        """No build is running."""
        with self.lock:
            self.tick()
            now = time.monotonic()
            return all(not b.building(now) for j in self.jobs.values() for b in j.builds.values())

    def builds_with_param(self, job: FakeJob, name: str, value: str) -> list[FakeBuild]:
        return [b for b in job.builds.values() if (name, value) in b.params]

    def received_posts(self, suffix: str) -> list[tuple[str, str]]:
        """POSTs to a path ending in ``suffix``, counted when they arrive (a hung one too)."""
        with self.lock:
            return [
                e for e in self.received if e[0] == "POST" and e[1].split("?")[0].endswith(suffix)
            ]

    def idle(self) -> bool:
        """Every request received has been answered (a hung one included)."""
        with self.lock:
            return self.in_flight == 0

    def posts(self, suffix: str) -> list[tuple[str, str, int]]:
        return [e for e in self.log if e[0] == "POST" and e[1].split("?")[0].endswith(suffix)]

    # -- simulation ----------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            now = time.monotonic()
            waiting = [i for i in self.queue.values() if i.state != "left"]
            # counted only when an item waits: a controller with 10,000 builds stays fast
            running = (
                sum(1 for j in self.jobs.values() for b in j.builds.values() if b.building(now))
                if waiting
                else 0
            )
            for item in sorted(waiting, key=lambda i: i.id):
                if item.state == "left":
                    continue
                job = item.job
                if now < item.due:
                    item.state = "waiting"
                    item.why = f"In the quiet period. Expires in {item.due - now:.1f} sec"
                    continue
                busy = [b for b in job.builds.values() if b.building(now)]
                if job.label_offline:
                    item.state, item.stuck = "buildable", True
                    item.why = "All nodes of label ‘linux’ are offline"
                elif not job.concurrent and busy:
                    item.state = "blocked"
                    item.why = f"Build #{busy[0].number} is already in progress (ETA: 1 sec)"
                elif running >= self.executors:
                    item.state = "buildable"
                    item.why = "Waiting for next available executor"
                else:
                    result = job.results.pop(0) if job.results else "SUCCESS"
                    build = FakeBuild(
                        job=job,
                        number=job.next_number,
                        queue_id=item.id,
                        params=item.params,
                        started=now + job.executable_delay,
                        duration=job.duration,
                        result=result,
                        test_report=job.test_report,
                        artifacts=dict(job.artifacts),
                    )
                    job.next_number += 1
                    item.state, item.left_at, item.why, item.build = "left", now, None, build
                    running += 1
            for qid in list(self.queue):
                item = self.queue[qid]
                if item.state == "left" and item.left_at is not None:
                    build = item.build
                    if build is not None and now >= build.started:
                        build.job.builds.setdefault(build.number, build)
                    if now - item.left_at > self.left_ttl:
                        if build is not None:
                            build.job.builds.setdefault(build.number, build)
                        del self.queue[qid]

    def schedule(self, job: FakeJob, params: list[tuple[str, str]]) -> tuple[QueueItem, bool]:
        with self.lock:
            self.tick()
            now = time.monotonic()
            for item in self.queue.values():
                if (
                    item.job is job
                    and item.state != "left"
                    and sorted(item.params) == sorted(params)
                ):
                    item.causes += 1
                    return item, False
            item = QueueItem(
                id=next(self.ids), job=job, params=params, queued=now, due=now + job.quiet_period
            )
            self.queue[item.id] = item
            self.tick()
            return item, True

    # -- JSON views ----------------------------------------------------------------------
    def job_url(self, job: FakeJob) -> str:
        return self.root_url + "".join(f"job/{quote(s, safe='')}/" for s in job.name.split("/"))

    def build_json(self, build: FakeBuild) -> dict[str, Any]:
        now = time.monotonic()
        building = build.building(now)
        result = None if building else ("ABORTED" if build.stopped else build.result)
        if building and build.early_result:
            result = build.early_result
        actions: list[dict[str, Any]] = [{"_class": "hudson.model.CauseAction"}]
        if build.params:
            actions.append(
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [{"name": k, "value": v} for k, v in build.params],
                }
            )
        if build.git_commit:
            actions.append(
                {
                    "_class": "hudson.plugins.git.util.BuildData",
                    "lastBuiltRevision": {
                        "SHA1": build.git_commit,
                        "branch": [{"SHA1": build.git_commit, "name": "origin/main"}],
                    },
                }
            )
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "number": build.number,
            "id": str(build.number),
            "url": f"{self.job_url(build.job)}{build.number}/",
            "building": building,
            "inProgress": building,
            "result": result,
            "duration": 0 if building else int(build.duration * 1000),
            "estimatedDuration": int(build.job.duration * 1000),
            "timestamp": int((time.time() - (time.monotonic() - build.started)) * 1000),
            "queueId": build.queue_id,
            "fullDisplayName": f"{build.job.name} #{build.number}",
            "actions": actions,
        }

    def item_json(self, item: QueueItem) -> dict[str, Any]:
        kind = {
            "waiting": "WaitingItem",
            "blocked": "BlockedItem",
            "buildable": "BuildableItem",
            "left": "LeftItem",
        }[item.state]
        data: dict[str, Any] = {
            "_class": f"hudson.model.Queue${kind}",
            "id": item.id,
            "blocked": item.state == "blocked",
            "buildable": item.state == "buildable",
            "stuck": item.stuck and item.state == "buildable",
            "inQueueSince": int(time.time() * 1000),
            "params": "".join(f"\n{k}={v}" for k, v in item.params),
            "task": {"name": item.job.name.split("/")[-1], "url": self.job_url(item.job)},
            "url": f"queue/item/{item.id}/",
            "why": item.why,
        }
        if item.state == "left":
            data["cancelled"] = item.cancelled
            build = item.build
            if build is not None and time.monotonic() >= build.started:
                data["executable"] = {
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                    "number": build.number,
                    "url": f"{self.job_url(build.job)}{build.number}/",
                }
            else:
                data["executable"] = None
        return data


class _Handler(BaseHTTPRequestHandler):
    fake: FakeJenkins
    protocol_version = "HTTP/1.1"
    # headers and body are two writes: with Nagle on, each keep-alive answer would wait for
    # the client's delayed ACK (~40 ms)
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake.lock:
            self.fake.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.fake.lock:
            self.fake.connections.discard(self.connection)

    # -- plumbing ------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: Any = b"",
        *,
        headers: Optional[dict[str, str]] = None,
        content_type: str = "application/json;charset=utf-8",
    ) -> None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
            content_type = "text/plain;charset=utf-8"
        else:
            data = body
        self.fake.log.append((self.command, self.path, status))
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _read_form(self) -> list[tuple[str, str]]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        pairs = []
        for key, values in parse_qs(raw, keep_blank_values=True).items():
            pairs.extend((key, v) for v in values)
        return pairs

    def _authorized(self) -> bool:
        fake = self.fake
        if fake.user is None:
            return True
        expected = base64.b64encode(f"{fake.user}:{fake.token}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def _session(self) -> Optional[str]:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "JSESSIONID":
                return value
        return None

    def _crumb_ok(self) -> bool:
        if not self.fake.require_crumb:
            return True
        session = self._session()
        crumb = self.fake.sessions.get(session or "")
        return crumb is not None and self.headers.get("Jenkins-Crumb") == crumb

    def do_GET(self) -> None:
        self._received("GET")

    def do_POST(self) -> None:
        self._received("POST")

    def _received(self, method: str) -> None:
        with self.fake.lock:
            self.fake.received.append((method, self.path))
            self.fake.in_flight += 1
        try:
            self._dispatch(method)
        finally:
            with self.fake.lock:
                self.fake.in_flight -= 1

    # -- routes --------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        form = self._read_form() if method == "POST" else []
        if not self._authorized():
            self._send(401, "Invalid password/token for user")
            return
        fake.tick()
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        if segments == ["crumbIssuer", "api", "json"]:
            session = self._session() or uuid.uuid4().hex
            crumb = hashlib.sha256(f"crumb:{session}".encode()).hexdigest()
            fake.sessions[session] = crumb
            self._send(
                200,
                {"crumbRequestField": "Jenkins-Crumb", "crumb": crumb},
                headers={"Set-Cookie": f"JSESSIONID={session}; Path=/"},
            )
            return
        if method == "POST" and not self._crumb_ok():
            self._send(403, "HTTP ERROR 403 No valid crumb was included in the request")
            return
        if segments == ["queue", "api", "json"]:
            with fake.lock:
                items = [fake.item_json(i) for i in fake.queue.values() if i.state != "left"]
            self._send(200, {"items": items})
            return
        if (
            len(segments) == 5
            and segments[:2] == ["queue", "item"]
            and segments[3:]
            == [
                "api",
                "json",
            ]
        ):
            with fake.lock:
                item = fake.queue.get(int(segments[2]))
                data = fake.item_json(item) if item else None
            self._send(200, data) if data else self._send(404, "Not Found")
            return
        if segments == ["queue", "cancelItem"] and method == "POST":
            qid = int(query.get("id", ["0"])[0])
            with fake.lock:
                item = fake.queue.get(qid)
                if item is None:
                    self._send(404, f"Provided id ({qid}) not found")
                elif item.state == "left":
                    self._send(500, f"Could not cancel run for id {qid}")
                else:
                    item.state, item.cancelled, item.left_at = "left", True, time.monotonic()
                    self._send(204)
            return
        # job/a/job/b/...
        names = []
        while len(segments) >= 2 and segments[0] == "job":
            names.append(segments[1])
            segments = segments[2:]
        job = fake.jobs.get("/".join(names)) if names else None
        if job is None:
            self._send(404, "Not Found")
            return
        self._job_route(method, job, segments, form)

    def _job_route(
        self, method: str, job: FakeJob, rest: list[str], form: list[tuple[str, str]]
    ) -> None:
        fake = self.fake
        if rest == ["api", "json"]:
            with fake.lock:
                builds = sorted(job.builds.values(), key=lambda b: -b.number)
                data = {
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                    "fullName": job.name,
                    "url": fake.job_url(job),
                    "buildable": job.buildable,
                    "property": [
                        {
                            "_class": "hudson.model.ParametersDefinitionProperty",
                            "parameterDefinitions": [{"name": p} for p in job.params],
                        }
                    ]
                    if job.params
                    else [],
                    "builds": [fake.build_json(b) for b in builds],
                }
            self._send(200, data)
            return
        if rest and rest[0] in ("build", "buildWithParameters") and len(rest) == 1:
            if method != "POST":
                self._send(405, "This URL requires POST", headers={"Allow": "POST"})
                return
            if not job.buildable:
                self._send(409, f"{job.name} is not buildable")
                return
            if rest[0] == "buildWithParameters":
                if not job.params:
                    self._send(400, f"{job.name} is not parameterized")
                    return
                given = dict(form)
                params = [(p, given.get(p, "")) for p in job.params]
            else:
                params = [(p, "") for p in job.params or []]
            item, created = fake.schedule(job, params)
            if fake.hang_trigger:
                delay, fake.hang_trigger = fake.hang_trigger, 0.0
                time.sleep(delay)
            location = f"{fake.root_url}queue/item/{item.id}/"
            self._send(201 if created else 303, "", headers={"Location": location})
            return
        if rest and rest[0].isdigit():
            build = job.builds.get(int(rest[0]))
            if build is None:
                self._send(404, "Not Found")
                return
            tail = rest[1:]
            if tail == ["api", "json"]:
                with fake.lock:
                    data = fake.build_json(build)
                self._send(200, data)
                return
            if tail == ["testReport", "api", "json"]:
                if build.test_report is None or build.building(time.monotonic()):
                    self._send(404, "Not Found")
                else:
                    self._send(200, build.test_report)
                return
            if tail and tail[0] == "artifact":
                data = build.artifacts.get("/".join(tail[1:]))
                if data is None:
                    self._send(404, "Not Found")
                else:
                    self._send(200, data, content_type="application/octet-stream")
                return
            if tail == ["stop"] and method == "POST":
                build.stopped = True
                self._send(302, "", headers={"Location": f"{fake.job_url(job)}{build.number}/"})
                return
        self._send(404, "Not Found")
