"""``image-push``, ``image-plan``, ``image-diagnose``: options in, one core call, exit code out."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import click

from ..errors import EXIT_FAILURE, CiReportError, Interrupted
from .common import exit_codes_epilog, global_options, run
from .options import setting_option, settings_from

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        setting_option("context", metavar="DIR"),
        setting_option("dockerfile", metavar="PATH"),
        setting_option("destinations", "--destination", metavar="REF"),
        setting_option("timeout", metavar="auto|SECONDS"),
        setting_option("bandwidth", metavar="MBPS"),
        setting_option("report", metavar="FILE"),
        setting_option("executor", metavar="PATH"),
        setting_option("skip_if_no_dockerfile"),
        setting_option("kill_grace", metavar="SECONDS"),
        setting_option("heartbeat", metavar="SECONDS"),
        setting_option("timeout_cap", metavar="SECONDS"),
        click.argument("executor_flags", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        f = option(f)
    return f


_plan_option = click.option(
    "--plan",
    "plan_path",
    required=True,
    metavar="FILE",
    help="The image-plan.json written by image-plan.",
)


def _error_code(err: CiReportError) -> int:
    """design.md section 3: image commands exit 1 when they stop before the executor runs (a bad
    flag, an unreadable plan); 143/130 after SIGTERM/SIGINT."""
    return err.exit_code if isinstance(err, Interrupted) else EXIT_FAILURE


def _request(ctx: click.Context, kw: dict[str, Any], mode: str) -> Any:
    from ..image.service import PushRequest

    settings = settings_from(ctx, kw)
    return PushRequest.from_settings(settings, list(kw.get("executor_flags") or ()), mode)


@click.command(
    "image-push",
    context_settings=_SETTINGS,
    epilog="""\b
Examples:
  ci-report image-push --context . --dockerfile Dockerfile \\
      --destination registry.example.com/team/app:1.2
  ci-report image-push --destination reg.example.com/team/app:$GIT_COMMIT \\
      --timeout auto --bandwidth 0.5 --report ci-report/image-push.json -- --cache=true
  ci-report image-push --mode docker --executor ghcr.io/osscontainertools/kaniko:v1.28.3 \\
      --destination reg.example.com/team/app:1.2
\b
Flags after -- go to the executor; --log-format=text and --push-retry=3 are added unless set.

"""
    + exit_codes_epilog("image-push"),
)
@_run_options
@click.option(
    "--mode",
    type=click.Choice(["direct", "docker"]),
    default="direct",
    show_default=True,
    help="Run the executor here, or its image via Docker.",
)
@global_options
@click.pass_context
def image_push(ctx: click.Context, mode: str, **kw: Any) -> None:
    """Preflight, size, time-box and run a Kaniko build; explain any failure."""

    def action(console: Any) -> int:
        from ..image.service import image_push as push

        return push(_request(ctx, kw, mode), console)

    run(ctx, action, internal_error_code=EXIT_FAILURE, error_code=_error_code)


@click.command(
    "image-plan",
    context_settings=_SETTINGS,
    epilog="""\b
Examples (Kubernetes pod with a python and a kaniko container):
  ci-report image-plan --destination reg.example.com/team/app:1.2 --timeout-cap 3000
  # container('kaniko'):  rc = sh(script: 'sh "$WORKSPACE_TMP/ci-report-image/kaniko-run.sh"',
  #                              returnStatus: true)
  # in parallel, python container:  ci-report image-watch --plan <workdir>/image-plan.json
  ci-report image-diagnose --plan <workdir>/image-plan.json --step-exit $rc
\b
Removes the rc, log, times and version files of an earlier run, then writes
<workdir>/kaniko-run.sh (busybox sh, set -o pipefail, busybox timeout, Kaniko's --cleanup, and
--pre-cleanup when the kaniko container was used before) and <workdir>/image-plan.json;
--json prints exactly the plan JSON on stdout.

"""
    + exit_codes_epilog("image-plan"),
)
@_run_options
@click.option(
    "--workdir",
    default=None,
    metavar="DIR",
    help="Where the script, plan, log, rc and times files go "
    "(default: $WORKSPACE_TMP/ci-report-image when WORKSPACE_TMP is set, else .ci-report).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan JSON on stdout.")
@global_options
@click.pass_context
def image_plan(ctx: click.Context, workdir: Optional[str], as_json: bool, **kw: Any) -> None:
    """Split mode, step 1: preflight + estimate + timeout -> a busybox script and a plan."""

    def action(console: Any) -> int:
        from ..image.service import image_plan as plan
        from ..image.split import default_workdir

        code, data = plan(_request(ctx, kw, "split"), workdir or default_workdir(), console)
        if as_json and data:
            click.echo(json.dumps(data, indent=2))
        return code

    run(ctx, action, internal_error_code=EXIT_FAILURE, error_code=_error_code)


@click.command(
    "image-diagnose",
    context_settings=_SETTINGS,
    epilog="""\b
Examples:
  ci-report image-diagnose --plan .ci-report/image-plan.json --step-exit 0
  ci-report image-diagnose --plan .ci-report/image-plan.json --step-exit "$rc" \\
      --report ci-report/image-push.json
\b
An rc, log or times file older than the plan is an earlier run's and is never used; an rc file
that disagrees with --step-exit is refused (stale-result); no rc file and --step-exit 127 means
the script never ran (script-never-ran).

"""
    + exit_codes_epilog("image-diagnose"),
)
@_plan_option
@click.option(
    "--report", default=None, metavar="FILE", help="Report JSON (default: the plan's report path)."
)
@click.option(
    "--step-exit",
    type=int,
    default=None,
    metavar="N",
    help="Exit status the pipeline saw for the kaniko step (sh returnStatus: true).",
)
@global_options
@click.pass_context
def image_diagnose(
    ctx: click.Context, plan_path: str, report: Optional[str], step_exit: Optional[int]
) -> None:
    """Split mode, step 3: diagnose the script's run from its log, rc and times files."""

    def action(console: Any) -> int:
        from ..image.service import image_diagnose as diagnose

        return diagnose(plan_path, console, report, step_exit=step_exit)

    run(ctx, action, internal_error_code=EXIT_FAILURE, error_code=_error_code)


@click.command(
    "image-watch",
    context_settings=_SETTINGS,
    epilog="""\b
Examples (in the python container, in parallel with the kaniko step):
  ci-report image-watch --plan "$WORKSPACE_TMP/ci-report-image/image-plan.json"
  ci-report image-watch --plan .ci-report/image-plan.json --heartbeat 20
\b
Prints a heartbeat with the phase, the upload rate (transmitted bytes of the pod's shared network
namespace, /proc/net/dev) and the time left while Kaniko is silent. Stops by itself when this
run's rc file appears or the plan's timeout + kill grace + --grace has passed.

"""
    + exit_codes_epilog("image-watch"),
)
@_plan_option
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Heartbeat after this long without Kaniko output.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop this long after the plan's timeout + kill grace.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05, max=10),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to look at the log and rc file.",
)
@global_options
@click.pass_context
def image_watch(
    ctx: click.Context, plan_path: str, heartbeat: float, grace: float, poll: float
) -> None:
    """Split mode, beside step 2: heartbeat and upload-rate lines while Kaniko is silent."""

    def action(console: Any) -> int:
        from ..image.split import load_plan
        from ..image.watch import WatchOptions, watch

        plan = load_plan(plan_path)
        return watch(
            plan, plan_path, console, WatchOptions(heartbeat=heartbeat, grace=grace, poll=poll)
        )

    def watch_code(err: CiReportError) -> int:
        return 0 if isinstance(err, Interrupted) else EXIT_FAILURE  # stopped with its branch

    run(ctx, action, internal_error_code=0, error_code=watch_code)
