"""Mail: the transport interface, the plugin hooks, the outbox and its dispatcher."""
