"""Wall-clock milliseconds for the protocols' timeouts, behind one seam.

Every timeout that lets one replica take over another's unfinished work (rename, namespace
drop, transaction) reads time here, so crash-recovery tests can advance the clock past a
timeout by patching ``iceshelf.tables.clock.now_ms`` instead of sleeping.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
