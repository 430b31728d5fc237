import sys

from harness.cli import main

try:
    raise SystemExit(main())
except ModuleNotFoundError as e:
    if e.name is None or e.name.split(".")[0] == "harness":
        raise
    # The usual cause: a Python without the project's dependencies (the venv not activated).
    print(f"python -m harness: module {e.name!r} is not installed in {sys.executable}; use the project's venv "
          "(`make test` creates it; then `. .venv/bin/activate`) or `pip install .`", file=sys.stderr)
    raise SystemExit(2) from None
