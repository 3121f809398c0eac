"""Enqueue test tasks with the project's broker; print their ids, one per line."""

from typing import Any

from django.core.management import BaseCommand, CommandParser


class Command(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("func")
        parser.add_argument("values", nargs="*", type=float)
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--cluster", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        from django_q.tasks import async_task

        values = [int(a) if float(a).is_integer() else a for a in options["values"]]
        kwargs = {"cluster": options["cluster"]} if options["cluster"] else {}
        for _ in range(options["count"]):
            self.stdout.write(
                async_task(f"tests.testapp.tasks.{options['func']}", *values, **kwargs)
            )
