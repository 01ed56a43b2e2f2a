"""How the processes' log lines look: one format for the API and the listener."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
