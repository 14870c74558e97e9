"""Checking an artifact loads, at registration, without torch or xgboost in the API.

A registration used to start `python -m workers.validate` for every artifact:
about 2 s each, nearly all of it importing the frameworks. For torch and
XGBoost files — formats whose loading runs no author code — one long-lived
checker process (`workers.validate --serve`) now answers in milliseconds once
warm; it is started on the first check, stopped after `IDLE_S` without one,
killed and replaced when a check outlasts its timeout, and replaced when a file
crashes it. `python` handler bundles, whose loading runs their author's code,
still get a fresh process each, so one bundle can never affect another's check.

One check at a time per API process (registrations are rare; a lock keeps the
protocol simple).
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import threading
import time

from core.errors import InvalidInput

logger = logging.getLogger(__name__)

TIMEOUT_S = 120.0
IDLE_S = 120.0
# Formats a loader reads as data; anything else is checked in a process of its own.
WARM_FRAMEWORKS = frozenset({"torch", "xgboost"})


class Checker:
    """The long-lived checker of one API process (see the module docstring)."""

    def __init__(
        self,
        *,
        timeout_s: float = TIMEOUT_S,
        idle_s: float = IDLE_S,
        command: tuple[str, ...] = (sys.executable, "-m", "workers.validate", "--serve"),
    ) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._last_used = 0.0
        self._reaper: threading.Thread | None = None

    def check(self, framework: str, path: str) -> None:
        """Return if `path` loads as `framework`; raise InvalidInput (422) saying why not."""
        if framework not in WARM_FRAMEWORKS or _is_tarball(path):
            # A bundle's handler (a SageMaker model.tar.gz may bring code/inference.py)
            # is its author's code: checked in a process of its own.
            check_alone(framework, path, timeout_s=self.timeout_s)
            return
        with self._lock:
            self._last_used = time.monotonic()
            answer = self._ask({"framework": framework, "path": path})
        if not answer["ok"]:
            raise InvalidInput(f"the artifact does not load as {framework}: {answer['detail']}")

    @property
    def pid(self) -> int | None:
        """The checker process's pid while one runs."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ask(self, request: dict[str, str]) -> dict[str, object]:
        process = self._running()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            self._stop()
            raise InvalidInput("the artifact could not be checked (the checker stopped)") from None
        ready, _, _ = select.select([process.stdout], [], [], self.timeout_s)
        line = process.stdout.readline() if ready else b""
        if not ready:
            self._stop()
            raise InvalidInput(f"the artifact did not load within {self.timeout_s:.0f} s")
        if not line:
            code = process.wait()
            self._process = None
            raise InvalidInput(f"loading the artifact crashed the loader (exit {code})")
        answer: dict[str, object] = json.loads(line)
        return answer

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                list(self.command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(
                    target=self._stop_when_idle, name="artifact-checker-reaper", daemon=True
                )
                self._reaper.start()
        return self._process

    def _stop_when_idle(self) -> None:
        while True:
            time.sleep(min(self.idle_s, 10.0))
            with self._lock:
                if self._process is None:
                    return
                if time.monotonic() - self._last_used >= self.idle_s:
                    self._stop()
                    return

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def check_alone(framework: str, path: str, *, timeout_s: float = TIMEOUT_S) -> None:
    """Check one artifact in a process of its own; raise InvalidInput (422) saying why not."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "workers.validate", framework, path],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(f"the artifact did not load within {timeout_s:.0f} s") from exc
    if result.returncode == 3:
        raise InvalidInput(f"the artifact does not load as {framework}: {result.stdout.strip()}")
    if result.returncode != 0:
        logger.warning("artifact validator failed: %s", result.stderr[-2000:])
        raise InvalidInput(
            f"the artifact could not be checked (validator exit {result.returncode})"
        )


_checker = Checker()


def _is_tarball(path: str) -> bool:
    """Whether `path` is a gzip file (a bundle or a SageMaker model.tar.gz)."""
    try:
        with open(path, "rb") as file:
            return file.read(2) == b"\x1f\x8b"
    except OSError:
        return False  # the checker reports the missing file as it always has


def validate_artifact(framework: str, path: str) -> None:
    """Raise InvalidInput (422) unless `path` loads as `framework` with the workers' loaders."""
    _checker.check(framework, path)
