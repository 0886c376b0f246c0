"""``python -m bench`` from the repository root: see :mod:`bench.cli`."""

from bench.cli import main

raise SystemExit(main())
