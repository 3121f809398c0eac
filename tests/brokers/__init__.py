"""A test-only Django app for the broker tests: execution records and the MongoDB stand-in.

Add ``"tests.brokers"`` to a throwaway project's ``INSTALLED_APPS``; environment variables
(see ``executions`` and ``mongomock_shim``) switch each part on for one process.
"""
