"""Run the MongoDB broker against mongomock, since no MongoDB server can run here.

With ``TESTS_MONGOMOCK`` set, ``pymongo.MongoClient`` becomes a mongomock client (nothing
else is replaced: Django-Q2's ``Mongo`` broker runs unchanged on top of it). mongomock keeps
its data in the memory of one process, so a separate ``manage.py`` that enqueues could not
reach the worker's store: with ``TESTS_MONGOMOCK_ENQUEUE=<count>`` the worker process itself
enqueues ``add(2, 3)`` that many times while Django starts, before the cluster forks (the
forked pusher inherits the store), and writes the task ids to ``TESTS_MONGOMOCK_IDS``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

MONGOMOCK = "TESTS_MONGOMOCK"
ENQUEUE = "TESTS_MONGOMOCK_ENQUEUE"
IDS = "TESTS_MONGOMOCK_IDS"


def install_if_asked() -> None:
    if not os.environ.get(MONGOMOCK):
        return
    if "django_q.brokers.mongo" in sys.modules:
        # The broker has already bound the real client: patching now would test MongoDB.
        raise RuntimeError("django_q.brokers.mongo was imported before mongomock could replace it.")
    import mongomock
    import pymongo
    from mongomock.store import ServerStore

    # Every client of a real deployment talks to one server: share one in-memory store.
    store = ServerStore()  # type: ignore[no-untyped-call]

    class SharedMongoClient(mongomock.MongoClient):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("_store", store)
            super().__init__(*args, **kwargs)

    pymongo.MongoClient = SharedMongoClient  # type: ignore[misc]
    count = int(os.environ.get(ENQUEUE, "0"))
    if count:
        enqueue(count, Path(os.environ[IDS]))


def enqueue(count: int, ids_file: Path) -> None:
    from django_q.brokers import get_broker
    from django_q.brokers.mongo import Mongo
    from django_q.tasks import async_task

    broker = get_broker()
    if not isinstance(broker, Mongo):
        raise RuntimeError(f"Q_CLUSTER selects {type(broker).__name__}, not the Mongo broker.")
    ids = [async_task("tests.testapp.tasks.add", 2, 3, broker=broker) for _ in range(count)]
    ids_file.write_text("\n".join(ids) + "\n")
