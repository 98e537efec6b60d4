"""`python -m dssesign`."""

from .cli import main

raise SystemExit(main())
