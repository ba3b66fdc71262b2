"""``python -m bsm_devstack.chaos`` (what ``make chaos`` runs)."""

import sys

from bsm_devstack.chaos.run import main

sys.exit(main())
