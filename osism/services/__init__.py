"""The pipeline's services: the listener (RabbitMQ in), the event bridge
and its log (Redis), the fan-out to WebSocket clients. The two modules here,
websocket_manager and event_bridge, are the faces upstream osism defines;
the packages below hold their parts."""
