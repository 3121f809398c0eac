"""Print the stored task results as JSON."""

import json
from typing import Any

from django.core.management import BaseCommand


class Command(BaseCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        from django_q.models import OrmQ, Task

        tasks = [
            {
                "id": task.id,
                "func": task.func,
                "result": task.result,
                "success": task.success,
                "cluster": task.cluster,
                "attempt_count": task.attempt_count,
            }
            for task in Task.objects.all()
        ]
        self.stdout.write(json.dumps({"tasks": tasks, "queued": OrmQ.objects.count()}))
