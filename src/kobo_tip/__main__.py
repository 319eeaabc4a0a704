"""``python -m kobo_tip`` runs the command line."""

import sys

from kobo_tip.cli import main

sys.exit(main())
