"""``python -m iceshelf.catalog.cli``: the same entry point as the ``iceshelf`` command."""

import sys

from iceshelf.catalog.cli import main

sys.exit(main())
