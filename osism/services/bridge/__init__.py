"""The parts of the event bridge (osism.services.event_bridge): the Redis
client and its settings, the event log in Redis, the publisher, the
subscription with its loop and supervisor, and the one hand-off of events
from the bridge's threads into the manager's loop."""
