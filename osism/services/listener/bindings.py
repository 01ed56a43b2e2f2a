"""Declaring the notification exchanges the way oslo.messaging does.

Each exchange is asserted passively first, so an exchange that OpenStack
already declared is used as it is, whatever its durability. A missing one is
declared as oslo.messaging declares it (topic, not auto-deleted, durable
only with ``amqp_durable_queues``), so the queue is bound before the service
sends its first notification and the service's declaration later matches.
"""

import logging
from typing import Any, Iterable

from kombu import Connection, Exchange

logger = logging.getLogger("osism.listener")

# An error without an AMQP reply code is not "404" (not found).
NO_REPLY_CODE = ""  # pragma: no mutate


def declare_exchanges(conn: Connection, exchanges: Iterable[Exchange]) -> None:
    """Use each exchange as it exists; declare the missing ones like oslo."""
    for exchange in exchanges:
        channel = conn.channel()
        try:
            channel.exchange_declare(
                exchange=exchange.name, type=exchange.type, passive=True
            )
            continue
        except conn.channel_errors as exc:
            if str(getattr(exc, "reply_code", NO_REPLY_CODE)) != "404":
                raise
        finally:
            close_channel(channel)
        channel = conn.channel()
        try:
            # not auto-deleted: kombu's default, as oslo declares it
            Exchange(
                exchange.name, type=exchange.type, durable=exchange.durable
            ).declare(channel=channel)
            logger.info(
                "Declared missing exchange %s (topic, %s)",
                exchange.name,
                "durable" if exchange.durable else "transient",
            )
        finally:
            close_channel(channel)


def close_channel(channel: Any) -> None:
    try:
        channel.close()
    except Exception as exc:
        logger.debug("Closing a channel failed: %s", exc)
