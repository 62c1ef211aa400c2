"""Read-only web dashboard (``sld dashboard``): campaigns, trajectories, one trajectory, workers.

- :mod:`.source` — what is read: the last saved embedded store file (never locked) or a live server
  database, both behind a read-only database proxy;
- :mod:`.queries` — every database read (small documents, indexed queries, downsampled series);
- :mod:`.app` — the Flask app factory: HTML pages and their JSON API.
"""

from sld_workflows.dashboard.app import create_app
from sld_workflows.dashboard.source import ReadOnlyError, ServerSource, SnapshotSource, SourceError

__all__ = ["ReadOnlyError", "ServerSource", "SnapshotSource", "SourceError", "create_app"]
