"""The ``osism`` command: api, listener, service, publish, watch, config."""
