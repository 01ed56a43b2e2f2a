"""The parts of the WebSocket manager (osism.services.websocket_manager): a
client's connection and outbox, the broadcast step, the writer, resume with
its hold of live events, and the manager's status. They take what they need
as arguments and return what they did; the manager keeps the state."""
