"""The listener: OpenStack notifications from RabbitMQ into the event bridge.

``main()`` is upstream's way of starting it (``osism service listener``, and
``python -c "from osism.services.listener import main; main()"`` in OSISM's
compose files): the settings are checked first (a value that cannot be used:
one line on stderr, exit status 2), then the listener runs until SIGTERM or
SIGINT. What it needs is imported when it is called, so importing this
package stays cheap.
"""

from typing import NoReturn


def main() -> NoReturn:
    """Run the listener as a process; SystemExit with its exit status."""
    import logging

    from osism import settings
    from osism.core.logs import LOG_FORMAT
    from osism.services.listener import process

    checked = settings.require()
    # A no-op when the caller set logging up already.
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    raise SystemExit(process.run(settings=checked))
