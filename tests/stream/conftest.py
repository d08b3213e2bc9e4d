"""Stream fixtures: the session tansu broker (``tansu_broker``, ``kafka_settings``,
``fresh_kafka``, ``consume``) moved to tests/conftest.py, shared with the trainer tests."""
