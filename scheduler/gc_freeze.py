"""Beat and the garbage collector: what its full passes need not scan.

A full pass scans every tracked object.  In beat most of them never die: the modules, classes
and SQLAlchemy metadata loaded at start (about 130,000 objects, more with OpenTelemetry's SDK and
exporter loaded), and during a burst the prepared messages held until their instant.  Sustained
fires promote short-lived objects into the oldest generation often enough to trigger a full pass
every few seconds (about 70 ms each at 2,000 fires/s: 7 % of beat's CPU).  So beat freezes what
it has loaded once it is ready (``gc.freeze``: moved to a generation the collector never
scans), and freezes again while a big burst is held.  Objects frozen with a burst may include
cyclic garbage made meanwhile: the next quiet moment (housekeeping) unfreezes, collects once and
freezes what survived.
"""

from __future__ import annotations

import gc

_burst_frozen = False


def freeze_start_up() -> None:
    """Hold everything loaded so far out of the collector's passes (call once, when beat is ready)."""
    gc.freeze()


def hold_burst() -> None:
    """Hold a burst's claimed fires (and everything else alive) out of the collector's passes."""
    global _burst_frozen
    gc.freeze()
    _burst_frozen = True


def collect_after_burst() -> bool:
    """If a burst was frozen since the last call: one full pass over what it held, then freeze the
    survivors again.  Returns whether it collected (call where a pause of a full pass is harmless)."""
    global _burst_frozen
    if not _burst_frozen:
        return False
    _burst_frozen = False
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return True
