"""A project's own subclass of the worker backend, named by its dotted path."""

from prodserver_djangoq2.backend import DjangoQ2Worker


class ProjectWorker(DjangoQ2Worker):
    """Selects its cluster only once Django is set up: the worker starts over for it."""
