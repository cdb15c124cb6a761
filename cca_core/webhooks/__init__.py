"""Webhooks: endpoints told of what happens in the fleet, each delivery signed and retried.

``events`` names them; ``targets`` refuses endpoints on the fleet's own networks; ``signing``
signs a delivery (and verifies one, for receivers written in Python); ``store`` keeps the
endpoints and the outbox of deliveries; ``schemas`` are their API shapes."""
