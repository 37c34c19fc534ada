"""Beat: rows -> index -> claim -> publish."""

import pkgutil

# An earlier system's own ``scheduler`` package (004, a Django app, names its jobs
# ``scheduler.module.sync_tasks:...``) can contribute subpackages from further down sys.path;
# ours is searched first, so it never shadows a tablebeat module.
__path__ = pkgutil.extend_path(__path__, __name__)
