"""The streaming side: Kafka events into event-time windows, dead letters, drift, triggers."""
