"""``python -m emily`` is the same as the ``emily`` console script."""

from emily.cli.main import main

raise SystemExit(main())
