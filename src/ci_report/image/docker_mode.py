"""Docker mode: the executor image run through the Docker Engine API (``docker`` package).

The build context is mounted at ``/workspace``, the directory of ``config.json`` at
``/kaniko/.docker`` (read-only), a Dockerfile outside the context at ``/ci-report/Dockerfile``.
Logs are streamed into the supervisor; the deadline and forwarded signals stop the container
(``POST /containers/{id}/stop?t=<grace>``: SIGTERM, SIGKILL after the grace); the container is
removed at the end. ``docker`` is imported only here, when the mode is used.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from .command import executor_args
from .runner import EOF, Handle

__all__ = ["DockerHandle", "DockerRun", "container_spec"]

WORKSPACE = "/workspace"
CONFIG_DIR = "/kaniko/.docker"
OUTSIDE_DOCKERFILE = "/ci-report/Dockerfile"


def container_spec(
    *,
    image: str,
    context: Path,
    dockerfile: Path,
    destinations: Sequence[str],
    extra_args: Sequence[str],
    docker_config: Optional[Path],
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``."""
    context = Path(context).absolute()
    dockerfile = Path(dockerfile).absolute()
    volumes: dict[str, dict[str, str]] = {str(context): {"bind": WORKSPACE, "mode": "rw"}}
    try:
        in_ctx = WORKSPACE + "/" + dockerfile.relative_to(context).as_posix()
    except ValueError:
        volumes[str(dockerfile)] = {"bind": OUTSIDE_DOCKERFILE, "mode": "ro"}
        in_ctx = OUTSIDE_DOCKERFILE
    if docker_config is not None:
        cfg = Path(docker_config)
        cfg_dir = cfg.parent if cfg.suffix == ".json" else cfg
        if cfg_dir.is_dir():
            volumes[str(cfg_dir.absolute())] = {"bind": CONFIG_DIR, "mode": "ro"}
    command = executor_args(
        context=WORKSPACE, dockerfile=in_ctx, destinations=destinations, extra=extra_args
    )
    return {
        "image": image,
        "command": command,
        "volumes": volumes,
        "environment": {"DOCKER_CONFIG": CONFIG_DIR},
        "labels": {"org.ci-report.role": "image-push"},
        "detach": True,
    }


class DockerHandle(Handle):
    def __init__(self, client: Any, container: Any, stop_grace: float) -> None:
        self.lines = queue.Queue()
        self.client = client
        self.container = container
        self.stop_grace = stop_grace
        self._rc: Optional[int] = None
        self._done = threading.Event()
        threading.Thread(target=self._stream, daemon=True, name="docker-logs").start()
        threading.Thread(target=self._wait, daemon=True, name="docker-wait").start()

    def _stream(self) -> None:
        buf = b""
        try:
            for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.lines.put(line.decode("utf-8", errors="replace").rstrip("\r"))
        except Exception as exc:  # the stream broke: the wait result still decides
            self.lines.put(f"[ci-report] log stream ended: {exc}")
        finally:
            if buf:
                self.lines.put(buf.decode("utf-8", errors="replace"))
            self.lines.put(EOF)

    def _wait(self) -> None:
        try:
            result = self.container.wait()
            self._rc = int(result.get("StatusCode", 1))
        except Exception:
            self._rc = 1
        self._done.set()

    def poll(self) -> Optional[int]:
        return self._rc if self._done.is_set() else None

    def send(self, sig: int) -> None:
        def act() -> None:
            with contextlib.suppress(Exception):
                if sig == signal.SIGKILL:
                    self.container.kill()
                else:
                    self.container.stop(timeout=int(self.stop_grace))

        threading.Thread(target=act, daemon=True, name="docker-stop").start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        with contextlib.suppress(Exception):
            self.client.close()


class DockerRun:
    """``start()`` creates and starts the container; the supervisor does the rest."""

    def __init__(
        self,
        *,
        image: str,
        context: Path,
        dockerfile: Path,
        destinations: Sequence[str],
        extra_args: Sequence[str],
        docker_config: Optional[Path],
        stop_grace: float = 30.0,
    ) -> None:
        self.spec = container_spec(
            image=image,
            context=context,
            dockerfile=dockerfile,
            destinations=destinations,
            extra_args=extra_args,
            docker_config=docker_config,
        )
        self.stop_grace = stop_grace

    def start(self) -> DockerHandle:
        try:
            import docker
            from docker.errors import DockerException, ImageNotFound
        except ImportError as exc:
            raise OSError(
                "docker mode needs the docker package: pip install 'ci-report[docker]'"
            ) from exc
        try:
            client = docker.from_env()
            try:
                container = client.containers.create(**self.spec)
            except ImageNotFound:
                client.images.pull(self.spec["image"])
                container = client.containers.create(**self.spec)
            container.start()
        except DockerException as exc:
            raise OSError(f"Docker Engine API: {exc}") from exc
        return DockerHandle(client, container, self.stop_grace)
