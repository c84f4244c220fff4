"""`python -m resilience status PATH`; see `resilience.status`."""

import sys

from resilience.status import main

sys.exit(main())
