"""``python -m pinpanel`` runs the same CLI as the ``pinpanel`` script."""

from pinpanel.cli import main

raise SystemExit(main())
