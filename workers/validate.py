"""Load an artifact the way a worker would, in a process apart from the API.

The API checks every artifact at registration, so a corrupt or mismatched one
is refused with a 422 then, not at its first request — and the API process
itself never imports torch or xgboost.

- `python -m workers.validate FRAMEWORK PATH`: one check, one process. Exit 0:
  loadable (prints the expected feature count, if known); exit 3: not a valid
  artifact (prints why). Used for `python` handler bundles, whose loading runs
  their author's code: each gets a fresh process that nothing else shares.
- `python -m workers.validate --serve`: a long-lived checker for the formats
  whose loading runs no author code (TorchScript / torch.export, XGBoost
  JSON/UBJ). One JSON line per request on stdin, `{"framework", "path"}`, one
  per answer on stdout, `{"ok", "detail", "features"}`. It pays the framework
  imports once (about 2 s here, xgboost pulling in scikit-learn) instead of at
  every registration; api/services/artifact_check.py runs it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from core.errors import SluicewayError, describe


def check(framework: str, path: Path) -> tuple[bool, str, int | None]:
    """(loadable, why not, expected feature count if known) of one artifact."""
    try:
        from workers.runners import load_runner

        runner = load_runner(framework, path, "cpu")
    except SluicewayError as exc:
        return False, exc.detail, None
    except Exception as exc:
        return False, f"cannot load it: {describe(exc)}", None
    return True, "", getattr(runner, "expected_features", None)


def serve() -> int:
    """Answer checks from stdin until it closes.

    Answers go out on a copy of stdout; stdout itself (fd 1, so C libraries too)
    is pointed at stderr, so whatever a loader prints never garbles an answer.
    """
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        ok, detail, features = check(request["framework"], Path(request["path"]))
        answers.write(json.dumps({"ok": ok, "detail": detail, "features": features}) + "\n")
        answers.flush()
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--serve"]:
        return serve()
    ok, detail, features = check(argv[1], Path(argv[2]))
    print(detail if not ok else (features or ""))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
