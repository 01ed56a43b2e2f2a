"""The six OpenStack services as the tests tabulate them."""

# (service type, alias or None, payload key) of the services we understand
SERVICES = [
    ("baremetal", None, "ironic_object.data"),
    ("compute", "nova", "nova_object.data"),
    ("network", "neutron", "neutron_object.data"),
    ("volume", "cinder", "cinder_object.data"),
    ("image", "glance", "glance_object.data"),
    ("identity", "keystone", "keystone_object.data"),
]

# (service type or alias, payload key): every name an event_type may start with
SERVICE_KEYS = [
    (name, key)
    for service, alias, key in SERVICES
    for name in (service, alias)
    if name is not None
]
