"""`python -m workers.validate FRAMEWORK PATH`: load an artifact the way a worker would.

The API runs this in a child process at registration, so a corrupt or mismatched
artifact is refused with a 422 then, not at its first request — and the API
process itself never imports torch or xgboost. Exit 0: loadable (prints the
expected feature count, if known); exit 3: not a valid artifact (prints why).
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.errors import SluicewayError, describe


def main(argv: list[str]) -> int:
    framework, path = argv[1], Path(argv[2])
    try:
        from workers.runners import load_runner

        runner = load_runner(framework, path, "cpu")
    except SluicewayError as exc:
        print(exc.detail)
        return 3
    except Exception as exc:
        print(f"cannot load it: {describe(exc)}")
        return 3
    print(getattr(runner, "expected_features", None) or "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
