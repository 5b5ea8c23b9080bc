"""The executions page: the run ledger for people, at ``/`` and ``/runs/<runId>``.

Server-rendered HTML from the standard library (``string.Template`` + ``html.escape``): no build
step, no external asset, no JavaScript. Everything that comes from a run (job names, parameters,
trigger messages, history reasons, build URLs) is escaped; a build URL is a link only when it is
http(s). Stuck runs (open, no change for ``stuck_after_s``) carry the word STUCK and a marker, not
only a colour.

"Sync now" is a plain form (``POST /runs/<runId>/sync``) that runs the same operation as
``POST /api/executions/<runId>/sync`` and answers with a redirect back to the run, so it works with
the keyboard and without scripts. Cross-site requests are refused by this module itself, whatever
the server in front does: the form carries a token bound to the run (an HMAC under a secret only
the receiver knows), the ``Origin`` (or, without it, the ``Referer``) must be this page's own
origin, and the ``Host`` must be a loopback name unless an API token protects the receiver (so a DNS
rebinding page cannot read or drive a loopback-only receiver).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from string import Template
from typing import Any, Callable, List, Mapping, Optional, Protocol, Sequence
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from .runs import OPEN_STATUSES, RUN_STATUSES

DEFAULT_STUCK_AFTER_S = 1800.0
PAGE_LIMIT = 100
MAX_OFFSET = 100_000
MAX_FORM_BYTES = 4096
MAX_JOB_FILTER = 200
SYNC_TOKEN_FIELD = "sync_token"  # ours: bound to the run
SERVER_CSRF_FIELD = "csrf_token"  # the receiver server's own CSRF token, when it has one

STUCK = "stuck"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin keeps the Referer on our own form posts (checked when Origin is absent)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
HTML_TYPE = "text/html; charset=utf-8"

SyncFn = Callable[[str], "tuple[int, dict[str, Any]]"]


class PageLedger(Protocol):
    """The reads the page makes (``ci_report.platform.runs.Ledger``)."""

    def get(self, run_id: str) -> Any: ...

    def list(
        self, status: Any = None, job: Optional[str] = None, limit: Any = 200, offset: int = 0
    ) -> List[Any]: ...

    def stuck(self, older_than_s: float, limit: Optional[int] = None) -> List[Any]: ...

    def history(self, run_id: str) -> List[dict[str, Any]]: ...

    def counts_by_status(self) -> dict[str, int]: ...


@dataclass
class PageResponse:
    status: int
    body: bytes
    content_type: str = HTML_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def esc(value: Any) -> str:
    """Text for HTML (also safe inside a quoted attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def iso(stamp: Optional[float]) -> str:
    if stamp is None:
        return ""
    when = datetime.fromtimestamp(stamp, tz=timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def safe_link(url: Optional[str]) -> Optional[str]:
    """The URL if it is http(s) with a host, else None (no javascript:, data:, ...)."""
    if not url:
        return None
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return str(url)


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_host(host_header: Optional[str]) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``::1`` (with or without a port)."""
    if not host_header:
        return False
    name = _host_name(host_header)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_STYLE = """
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff;
  --soft: #f6f8fa; --link: #0550ae; --bad: #a40e26; --warn: #7a4a00; --ok: #116329;
  --focus: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
a { color: var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible,
summary:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px 8px; z-index: 2; }
header { background: #24292f; color: #fff; padding: 10px 24px; display: flex; gap: 24px;
  align-items: baseline; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
header .where { color: #d0d7de; font-size: 13px; }
main { padding: 16px 24px 40px; max-width: 1400px; }
h1 { font-size: 22px; margin: 4px 0 12px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 14px; padding: 0;
  list-style: none; }
.summary a { display: inline-block; padding: 3px 10px; border: 1px solid var(--line);
  border-radius: 14px; text-decoration: none; color: var(--fg); background: var(--soft); }
.summary a.stuck-count { border: 2px solid var(--bad); color: var(--bad); font-weight: 700; }
form.filters { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; margin: 0 0 14px;
  padding: 10px 12px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; }
form.filters label { display: flex; flex-direction: column; font-size: 13px; color: var(--muted);
  gap: 2px; }
input, select, button { font: inherit; }
input[type=text], select { padding: 4px 6px; border: 1px solid #8c959f; border-radius: 4px;
  min-width: 14em; }
button { padding: 5px 14px; border: 1px solid #1f2328; border-radius: 6px; background: #fff;
  cursor: pointer; }
button.primary { background: #1f6feb; border-color: #1f6feb; color: #fff; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: var(--muted); padding: 0 0 6px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--soft); font-size: 13px; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { white-space: nowrap; }
form.sync { margin: 16px 0 4px; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
tr.is-stuck { background: #fff1f1; }
tr.is-stuck td:first-child { border-left: 5px solid var(--bad); }
.status { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 13px;
  font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.s-success { color: var(--ok); }
.s-failed, .s-lost, .s-trigger_failed, .s-timed_out, .s-expired { color: var(--bad); }
.s-unstable, .s-aborted, .s-cancelled, .s-not_built { color: var(--warn); }
.s-queued, .s-running { color: var(--link); }
.stuck-flag { display: inline-block; margin-left: 6px; padding: 0 6px; background: var(--bad);
  color: #fff; font-size: 12px; font-weight: 700; border-radius: 3px; letter-spacing: .04em; }
.why { color: var(--bad); font-size: 13px; }
.muted { color: var(--muted); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; }
.notice { padding: 8px 12px; border-radius: 6px; border: 1px solid var(--line);
  background: var(--soft); margin: 0 0 14px; }
.notice.error { border-color: var(--bad); color: var(--bad); background: #fff1f1; }
.pager { margin-top: 12px; display: flex; gap: 16px; }
"""

_PAGE = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><a href="/">ci-report executions</a><span class="where">$where</span></header>
<main id="main">
$content
</main>
</body>
</html>
"""
)


def _status_badge(status: str) -> str:
    return f'<span class="status s-{esc(status)}">{esc(status)}</span>'


def _stuck_flag(seconds: float) -> str:
    return (
        f'<span class="stuck-flag" title="no change for {esc(human_age(seconds))}">'
        "&#9888; STUCK</span>"
    )


def _query_value(query: Mapping[str, Sequence[str]], name: str) -> str:
    values = query.get(name) or []
    return str(values[0]) if values else ""


class ExecutionsPage:
    """Renders the page from a ledger; ``sync`` runs "Sync now" (``run_id -> (status, body)``,
    the ExecutionsAPI's ``POST /api/executions/<runId>/sync``); ``secret`` keys the form
    tokens (random per process by default; give the same one to replicas behind one address);
    ``token_protected`` says whether management routes need the API token (then any Host is
    served, because a cross-site page cannot send the token)."""

    def __init__(
        self,
        ledger: PageLedger,
        *,
        sync: Optional[SyncFn] = None,
        stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
        secret: Optional[bytes] = None,
        token_protected: bool = False,
        where: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.sync = sync
        self.stuck_after_s = float(stuck_after_s)
        self._secret = secret or secrets.token_bytes(32)
        self.token_protected = token_protected
        self.where = where
        self.clock = clock

    # ---- tokens and request checks --------------------------------------------------------
    def csrf_token(self, run_id: str) -> str:
        return hmac.new(self._secret, b"sync\0" + run_id.encode(), hashlib.sha256).hexdigest()

    def host_allowed(self, headers: Mapping[str, str]) -> bool:
        return self.token_protected or is_loopback_host(_get(headers, "Host"))

    def same_origin(self, headers: Mapping[str, str]) -> bool:
        """The request's Origin (else Referer) names this server's own Host."""
        host = (_get(headers, "Host") or "").strip().lower()
        if not host:
            return False
        source = _get(headers, "Origin")
        if source is None or source.strip() == "":
            source = _get(headers, "Referer")
        if not source:
            return False
        try:
            parts = urlsplit(source.strip())
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host

    # ---- routes ---------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        server_csrf: Optional[str] = None,
    ) -> PageResponse:
        """Serve ``GET /``, ``GET /runs/<runId>`` and ``POST /runs/<runId>/sync``.
        ``server_csrf`` is the server's CSRF token, embedded in the form next to ours."""
        if not self.host_allowed(headers):
            return self._error(
                421,
                "Wrong host",
                "This receiver has no API token, so its page is served only under a loopback "
                "name (127.0.0.1, localhost). Open it as http://127.0.0.1:PORT/, or start the "
                "receiver with --api-token to serve it under another name.",
            )
        clean = path.rstrip("/") or "/"
        if clean == "/":
            if method not in ("GET", "HEAD"):
                return self._error(405, "Method not allowed", "Use GET.", allow="GET, HEAD")
            return self.list_page(query)
        if clean.startswith("/runs/"):
            rest = clean[len("/runs/") :]
            if rest.endswith("/sync"):
                if method != "POST":
                    return self._error(405, "Method not allowed", "Use POST.", allow="POST")
                return self.sync_post(
                    _unquote(rest[: -len("/sync")]), headers, body, server_csrf=server_csrf
                )
            if method not in ("GET", "HEAD"):
                return self._error(405, "Method not allowed", "Use GET.", allow="GET, HEAD")
            return self.run_page(_unquote(rest), query, server_csrf=server_csrf)
        return self._error(404, "Not found", "No such page.")

    def list_page(self, query: Mapping[str, Sequence[str]]) -> PageResponse:
        now = self.clock()
        status = _query_value(query, "status").strip().lower()
        job = _query_value(query, "job").strip()[:MAX_JOB_FILTER]
        try:
            offset = min(MAX_OFFSET, max(0, int(_query_value(query, "offset") or 0)))
        except ValueError:
            offset = 0
        if status and status not in RUN_STATUSES and status != STUCK:
            status = ""
        if status == STUCK:
            runs = [
                r
                for r in self.ledger.stuck(self.stuck_after_s, limit=offset + PAGE_LIMIT + 1)
                if not job or r.job == job
            ][offset:]
        else:
            runs = self.ledger.list(
                status=status or None, job=job or None, limit=PAGE_LIMIT + 1, offset=offset
            )
        more = len(runs) > PAGE_LIMIT
        runs = runs[:PAGE_LIMIT]
        counts = self.ledger.counts_by_status()
        stuck_total = len(self.ledger.stuck(self.stuck_after_s, limit=10_000))

        parts = ["<h1>Executions</h1>", self._summary(counts, stuck_total)]
        parts.append(self._filters(status, job))
        parts.append(self._table(runs, now, status, job))
        pager = []
        if offset > 0:
            prev = max(0, offset - PAGE_LIMIT)
            pager.append(f'<a href="{esc(self._list_url(status, job, prev))}">Newer runs</a>')
        if more:
            nxt = offset + PAGE_LIMIT
            pager.append(f'<a href="{esc(self._list_url(status, job, nxt))}">Older runs</a>')
        if pager:
            parts.append('<nav class="pager" aria-label="Pages">' + "".join(pager) + "</nav>")
        return self._page("Executions · ci-report", "\n".join(parts))

    def run_page(
        self,
        run_id: str,
        query: Mapping[str, Sequence[str]],
        notice: str = "",
        status_code: int = 200,
        *,
        server_csrf: Optional[str] = None,
    ) -> PageResponse:
        run = self.ledger.get(run_id)
        if run is None:
            return self._error(404, "No such run", f"The ledger has no run {run_id!r}.")
        now = self.clock()
        stuck = self._is_stuck(run, now)
        parts = [f"<h1>Run <code>{esc(run.run_id)}</code></h1>"]
        if notice:
            parts.append(notice)
        elif _query_value(query, "synced") == "1":
            checked = iso(getattr(run, "last_checked_at", None)) or "now"
            if run.status in OPEN_STATUSES:
                parts.append(
                    f'<p class="notice" role="status">Asked Jenkins (checked {esc(checked)}): the '
                    f"run is still {_status_badge(run.status)} ({esc(run.status_reason or '')}). "
                    "If Jenkins could not be reached, the receiver's log says why; the "
                    "reconciler keeps trying.</p>"
                )
            else:
                parts.append(
                    f'<p class="notice" role="status">Synced with Jenkins (checked '
                    f"{esc(checked)}): status is {_status_badge(run.status)}.</p>"
                )
        if stuck:
            idle = human_age(now - float(run.updated_at or run.created_at))
            parts.append(
                self._notice(
                    f"This run is stuck: it is {run.status} and nothing changed for {idle}. "
                    "Press Sync now to read its result from Jenkins.",
                    error=True,
                )
            )
        parts.append(self._run_details(run, now, stuck))
        parts.append(self._sync_form(run, server_csrf))
        parts.append(self._history(run))
        parts.append(self._parameters(run))
        parts.append('<p><a href="/">&larr; All executions</a></p>')
        return self._page(f"Run {run.run_id} · ci-report", "\n".join(parts), status_code)

    def sync_post(
        self,
        run_id: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        server_csrf: Optional[str] = None,
    ) -> PageResponse:
        if not self.same_origin(headers):
            return self._error(
                403,
                "Cross-site request refused",
                "Sync now must be pressed on this receiver's own page (the Origin or Referer of "
                "the request is missing or names another site).",
            )
        ctype = (_get(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
            return self._error(400, "Bad request", "Expected the Sync now form.")
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
        token = (form.get(SYNC_TOKEN_FIELD) or [""])[0]
        if not hmac.compare_digest(token.encode(), self.csrf_token(run_id).encode()):
            return self._error(
                403,
                "Form expired",
                "The form token does not match (the receiver restarted, or the form came from "
                "elsewhere). Reload the run's page and press Sync now again.",
            )
        if self.ledger.get(run_id) is None:
            return self._error(404, "No such run", f"The ledger has no run {run_id!r}.")
        if self.sync is None:
            return self.run_page(
                run_id,
                {},
                notice=self._notice(
                    "Sync is not available: this receiver has no Jenkins access. Start it with "
                    "--jenkins-url (and JENKINS_USER / JENKINS_TOKEN).",
                    error=True,
                ),
                status_code=503,
                server_csrf=server_csrf,
            )
        try:
            code, answer = self.sync(run_id)
        except Exception as exc:  # never a traceback to the browser
            code, answer = 500, {"error": f"sync failed: {type(exc).__name__}"}
        if code < 300:
            location = f"/runs/{quote(run_id, safe='')}?synced=1"
            return PageResponse(
                303, b"", "text/plain; charset=utf-8", {"Location": location, **SECURITY_HEADERS}
            )
        message = answer.get("message") or answer.get("error") or f"HTTP {code}"
        return self.run_page(
            run_id,
            {},
            notice=self._notice(f"Sync failed: {message}", error=True),
            status_code=code if 400 <= code < 600 else 502,
            server_csrf=server_csrf,
        )

    # ---- fragments ------------------------------------------------------------------------
    def _is_stuck(self, run: Any, now: float) -> bool:
        if run.status not in OPEN_STATUSES:
            return False
        return now - float(run.updated_at or run.created_at) >= self.stuck_after_s

    def _list_url(self, status: str, job: str, offset: int) -> str:
        params = {k: v for k, v in (("status", status), ("job", job)) if v}
        if offset:
            params["offset"] = str(offset)
        return "/" + ("?" + urlencode(params) if params else "")

    def _summary(self, counts: Mapping[str, int], stuck_total: int) -> str:
        items = []
        for status in RUN_STATUSES:
            n = int(counts.get(status, 0) or 0)
            if n:
                items.append(
                    f'<li><a href="{esc(self._list_url(status, "", 0))}">'
                    f"{esc(status)}: <strong>{n}</strong></a></li>"
                )
        if stuck_total:
            items.insert(
                0,
                f'<li><a class="stuck-count" href="/?status=stuck">&#9888; stuck: '
                f"<strong>{stuck_total}</strong></a></li>",
            )
        if not items:
            return '<p class="muted">The ledger holds no runs yet.</p>'
        return '<ul class="summary" aria-label="Runs by status">' + "".join(items) + "</ul>"

    def _filters(self, status: str, job: str) -> str:
        options = ['<option value="">any status</option>']
        for value in (STUCK, *RUN_STATUSES):
            selected = " selected" if value == status else ""
            text = (
                f"stuck (no change for {human_age(self.stuck_after_s)})"
                if value == STUCK
                else value
            )
            options.append(f'<option value="{esc(value)}"{selected}>{esc(text)}</option>')
        return (
            '<form class="filters" method="get" action="/" role="search">'
            '<label for="f-status">Status<select id="f-status" name="status">'
            + "".join(options)
            + "</select></label>"
            '<label for="f-job">Job (full name)<input id="f-job" type="text" name="job" '
            f'value="{esc(job)}" placeholder="team/app/main" maxlength="{MAX_JOB_FILTER}"></label>'
            '<button type="submit" class="primary">Filter</button>'
            '<a href="/">Clear filters</a>'
            "</form>"
        )

    def _table(self, runs: Sequence[Any], now: float, status: str, job: str) -> str:
        if not runs:
            what = " matching these filters" if status or job else ""
            return f'<p class="muted">No runs{esc(what)}.</p>'
        rows = []
        for run in runs:
            stuck = self._is_stuck(run, now)
            href = "/runs/" + quote(str(run.run_id), safe="")
            badge = _status_badge(run.status)
            if stuck:
                badge += _stuck_flag(now - float(run.updated_at or run.created_at))
            link = safe_link(run.build_url)
            if run.build_number is not None and link:
                build = f'<a href="{esc(link)}">#{esc(run.build_number)}</a>'
            elif run.build_number is not None:
                build = f"#{esc(run.build_number)}"
            else:
                build = '<span class="muted">none yet</span>'
            why = ""
            if run.status == "trigger_failed" or run.trigger_status == "failed":
                why = (
                    f'<span class="why"><code>{esc(run.trigger_code or "trigger-failed")}</code> '
                    f"{esc(run.trigger_message or '')}</span>"
                )
            elif run.status_reason and (stuck or run.status not in ("success",)):
                why = f'<span class="muted">{esc(run.status_reason)}</span>'
            tests = ""
            if run.total is not None:
                tests = f"{esc(run.passed)}/{esc(run.total)} passed"
                if run.failed:
                    tests += f", {esc(run.failed)} failed"
            rows.append(
                f'<tr class="{"is-stuck" if stuck else ""}">'
                f'<td class="id"><a href="{esc(href)}"><code>{esc(run.run_id)}</code></a></td>'
                f"<td>{esc(run.job)}</td>"
                f"<td>{badge}</td>"
                f"<td>{build}</td>"
                f"<td>{why}</td>"
                f"<td>{esc(run.result_source or '')}</td>"
                f'<td class="num">{tests}</td>'
                f'<td class="num" title="created {esc(iso(run.created_at))}">'
                f"{esc(human_age(now - float(run.created_at)))}</td>"
                f'<td class="num">{esc(human_age(now - float(run.updated_at or run.created_at)))}'
                " ago</td>"
                "</tr>"
            )
        return (
            "<table><caption>Newest first. A run is STUCK when it is open and nothing changed "
            f"for {esc(human_age(self.stuck_after_s))}.</caption>"
            "<thead><tr>"
            '<th scope="col">Run</th><th scope="col">Job</th><th scope="col">Status</th>'
            '<th scope="col">Build</th><th scope="col">Why</th>'
            '<th scope="col">Result from</th><th scope="col">Tests</th>'
            '<th scope="col">Age</th><th scope="col">Last change</th>'
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        )

    def _run_details(self, run: Any, now: float, stuck: bool) -> str:
        status = _status_badge(run.status)
        if stuck:
            status += _stuck_flag(now - float(run.updated_at or run.created_at))
        link = safe_link(run.build_url)
        if link:
            build = f'<a href="{esc(link)}">#{esc(run.build_number)} {esc(link)}</a>'
        elif run.build_number is not None:
            build = f"#{esc(run.build_number)}"
        else:
            build = '<span class="muted">no build yet</span>'
        rows = [
            ("Job", esc(run.job)),
            ("Status", status),
            ("Why", esc(run.status_reason or "")),
            ("Build", build),
            ("Queue item", esc(run.queue_id if run.queue_id is not None else "")),
        ]
        failed = run.status == "trigger_failed" or run.trigger_status == "failed"
        trigger = esc(run.trigger_status)
        if run.trigger_message and not failed:
            trigger += f" ({esc(run.trigger_message)})"
        rows.append(("Trigger", trigger))
        if failed:
            rows.append(
                (
                    "Trigger failure",
                    f'<span class="why"><code>{esc(run.trigger_code or "")}</code> '
                    f"{esc(run.trigger_message or '')}</span>",
                )
            )
        if run.total is not None:
            rows.append(
                (
                    "Tests",
                    f"{esc(run.passed)} passed, {esc(run.failed)} failed, "
                    f"{esc(run.skipped)} skipped of {esc(run.total)}",
                )
            )
        rows += [
            ("Result from", esc(run.result_source or "")),
            ("Created", f"{esc(iso(run.created_at))} ({esc(human_age(now - run.created_at))} ago)"),
            ("Started", esc(iso(run.started_at))),
            ("Finished", esc(iso(run.finished_at))),
            ("Last change", esc(iso(run.updated_at))),
            ("Last checked", esc(iso(run.last_checked_at))),
            ("Attempts", esc(run.attempts)),
        ]
        return (
            '<dl class="run">'
            + "".join(f"<dt>{name}</dt><dd>{text}</dd>" for name, text in rows if text)
            + "</dl>"
        )

    def _sync_form(self, run: Any, server_csrf: Optional[str]) -> str:
        action = "/runs/" + quote(str(run.run_id), safe="") + "/sync"
        hint = (
            "Reads the build's result from Jenkins now (the same as POST "
            f"/api/executions/{esc(run.run_id)}/sync)."
        )
        if run.status not in OPEN_STATUSES:
            hint = "This run is final; a sync re-reads Jenkins but never reopens it."
        return (
            f'<form class="sync" method="post" action="{esc(action)}">'
            f'<input type="hidden" name="{SYNC_TOKEN_FIELD}" '
            f'value="{esc(self.csrf_token(run.run_id))}">'
            + (
                f'<input type="hidden" name="{SERVER_CSRF_FIELD}" value="{esc(server_csrf)}">'
                if server_csrf
                else ""
            )
            + '<button type="submit" class="primary" id="sync-now">Sync now</button> '
            f'<span class="muted">{hint}</span></form>'
        )

    def _history(self, run: Any) -> str:
        rows = self.ledger.history(run.run_id)
        if not rows:
            return '<h2>History</h2><p class="muted">No transitions recorded.</p>'
        body = "".join(
            "<tr>"
            f'<td class="num">{esc(_history_time(h.get("at")))}</td>'
            f"<td>{esc(h.get('from') or '(new)')}</td>"
            f"<td>{_status_badge(str(h.get('to') or ''))}</td>"
            f"<td>{esc(h.get('reason') or '')}</td>"
            f"<td>{esc(h.get('source') or '')}</td>"
            "</tr>"
            for h in rows
        )
        return (
            "<h2>History</h2><table><caption>Every status change, oldest first.</caption>"
            '<thead><tr><th scope="col">At</th><th scope="col">From</th><th scope="col">To</th>'
            '<th scope="col">Reason</th><th scope="col">By</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def _parameters(self, run: Any) -> str:
        params = dict(run.parameters or {})
        if not params:
            return ""
        body = "".join(
            f"<tr><td><code>{esc(k)}</code></td><td><code>{esc(v)}</code></td></tr>"
            for k, v in sorted(params.items())
        )
        return (
            "<h2>Parameters</h2><table><caption>As stored (secret-looking names are redacted)."
            '</caption><thead><tr><th scope="col">Name</th><th scope="col">Value</th></tr>'
            f"</thead><tbody>{body}</tbody></table>"
        )

    def _notice(self, text: str, *, error: bool = False) -> str:
        cls = "notice error" if error else "notice"
        role = "alert" if error else "status"
        return f'<p class="{cls}" role="{role}">{esc(text)}</p>'

    def _page(self, title: str, content: str, status: int = 200) -> PageResponse:
        body = _PAGE.substitute(
            title=esc(title), style=_STYLE, where=esc(self.where), content=content
        )
        return PageResponse(status, body.encode("utf-8"), HTML_TYPE, dict(SECURITY_HEADERS))

    def _error(self, status: int, title: str, text: str, allow: str = "") -> PageResponse:
        content = f"<h1>{esc(title)}</h1>{self._notice(text, error=True)}"
        content += '<p><a href="/">&larr; All executions</a></p>'
        response = self._page(f"{title} · ci-report", content, status)
        if allow:
            response.headers["Allow"] = allow
        return response


def _history_time(value: Any) -> str:
    if isinstance(value, (int, float)):
        return iso(float(value))
    text = str(value or "")
    try:  # the ledger's ISO-8601 "2027-01-15T08:00:00.000Z"
        return iso(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return text


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _get(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        for key, item in headers.items():
            if key.lower() == wanted:
                return item
    return value
