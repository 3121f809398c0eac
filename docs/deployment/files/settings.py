# The part of settings.py that the recipes on these pages rely on.
Q_CLUSTER = {
    "name": "mysite",
    "orm": "default",
    "workers": 2,
    # A task that runs longer is ended; a stop waits for tasks this long plus 5 s.
    "timeout": 30,
    "retry": 45,
}

# STOP_TIMEOUT is left to its default: the cluster's timeout plus 5 s, here 35 s.
# HEALTH_FILE turns on the heartbeat that the container's health probes read.
PRODUCTION_PROCESSES = {
    "worker": {"BACKEND": "djangoq2", "HEALTH_FILE": "/tmp/worker.health"},
}
