"""``python -m drdo_lib ...``: see :mod:`drdo_lib.cli`."""
from drdo_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
