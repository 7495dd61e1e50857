"""Celery settings: each one here is a reliability decision, derived from
``worker.basics.settings``.

* Late acks: a message is acknowledged after its handler finished, not when it was received.
* ``task_retry_on_worker_lost``: a lost pool child's message is retried (bounded) instead of being
  acknowledged and lost; ``task_reject_on_worker_lost`` stays off (it loops forever).
* No countdowns: retries wait in Redis (``worker.pipeline.scheduler``), so nothing waits in the
broker and
  the visibility timeout only bounds how long a message a killed worker had reserved waits
  before kombu restores it (the watchdog usually republishes it sooner). A redelivered copy of a
  running message meets the running handler's lease and does nothing.
* Time limits: the thread pool cannot enforce them; each attempt's deadline
  (``TASK_TIME_LIMIT_SECONDS``) is enforced at every provider I/O step (``worker.basics.deadline``).
  ``task_time_limit`` is only a backstop for pools that can kill a task (prefork, gevent), set
  past the deadline and the lease.
* ``worker_cancel_long_running_tasks_on_connection_loss``: a broker blip must not leave a second
  copy running beside the first.
* Prefetch of one: a slow provider's messages are not hoarded by one worker.
"""

from kombu import Exchange, Queue

from worker.basics.settings import settings
from worker.integrations import registry
from worker.tasks import broker

_s = settings()
registry.load(_s.shiphub_integration_modules)
_sentinels = _s.sentinels

# kombu's Redis transport, with the fix that keeps a worker alive through a Redis restart; behind
# Sentinel, kombu's Sentinel transport with the same fix, following the master.
broker_url = _sentinels.kombu_url if _sentinels else _s.redis_url
broker_transport = f"{broker.__name__}:{'SentinelTransport' if _sentinels else 'Transport'}"
broker_connection_retry_on_startup = True
broker_connection_timeout = 2.0
broker_transport_options = {
    "visibility_timeout": _s.broker_visibility_timeout_seconds,
    # Look for abandoned messages often; the scan is one ZRANGE.
    "unacked_restore_interval": min(10.0, _s.broker_visibility_timeout_seconds / 4),
    "unacked_restore_throttle": 1,
    "socket_timeout": 10.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 10,
}
if _sentinels:
    broker_transport_options |= {
        "master_name": _sentinels.master,
        # Asking the sentinels where the master is: short, so that one sentinel that is down
        # costs little before the next is asked.
        "sentinel_kwargs": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
    }

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True  # answers live in our own records, not in a result backend
result_backend = None

task_acks_late = True
task_acks_on_failure_or_timeout = True
task_reject_on_worker_lost = False
task_retry_on_worker_lost = True
task_time_limit = _s.task_time_limit_seconds + _s.lease_seconds + 30
task_publish_retry = True
task_publish_retry_policy = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
worker_concurrency = _s.worker_concurrency
worker_send_task_events = True  # Flower sees tasks received, started, succeeded, retried
# No "task-sent" events: each would be a second publish on the receiver's hot path.
task_send_sent_event = False

task_default_queue = registry.HUB_QUEUE
task_queues = [Queue(name, Exchange(name), routing_key=name) for name in registry.queues()]
task_routes = ("worker.integrations.routing.route",)

# redbeat (one beat acts), riding out Redis outages (worker/tasks/beat.py); behind Sentinel, its
# own spelling (a redis-sentinel:// URL, the sentinels and the master's name in its options).
beat_scheduler = "worker.tasks.beat:Scheduler"
redbeat_redis_url = "redis-sentinel://" if _sentinels else _s.redis_url
redbeat_redis_options = (
    {
        "sentinels": list(_sentinels.addresses),
        "service_name": _sentinels.master,
        "db": _sentinels.db,
        "password": _sentinels.password,
        "socket_timeout": 5.0,
        "sentinel_kwargs": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
    }
    if _sentinels
    else {}
)
redbeat_key_prefix = "shiphub:redbeat"
redbeat_lock_timeout = 60
beat_max_loop_interval = 5
