"""App configuration of the broker tests' helper app."""

from __future__ import annotations

from django.apps import AppConfig

from . import executions, mongomock_shim


class BrokerTestsConfig(AppConfig):
    name = "tests.brokers"
    label = "broker_tests"

    def ready(self) -> None:
        # The cluster forks its processes after this, so they all inherit what is set up here.
        executions.record_if_asked()
        mongomock_shim.install_if_asked()
