"""watcher: a self-hosted news-monitoring daemon.

It polls RSS/Atom feeds on a schedule, matches each new entry against watch rules written in YAML, stores the
hits in SQLite and pushes alerts to Slack, email or the console.
"""

__version__ = "0.1.0"
