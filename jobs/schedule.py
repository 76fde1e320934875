"""The periodic sweeps, for `rq cron jobs.schedule --url $REDIS_URL` (one such process per deployment)."""

from rq import cron

from jobs import alerts, backups, dashboard, maintenance, notify

cron.register(maintenance.release_expired_reservations, queue_name="default", interval=30)
cron.register(maintenance.redrive_lost_orders, queue_name="default", interval=30)
cron.register(maintenance.reconcile_uncertain_payments, queue_name="default", interval=30)
cron.register(maintenance.redrive_payment_operations, queue_name="default", interval=60)
cron.register(maintenance.recheck_held_payments, queue_name="default", interval=300)
cron.register(maintenance.purge_abandoned_carts, queue_name="default", cron="17 4 * * *")
# Daily at 03:30 UTC, away from the sweeps' busy minute; a slow dump must outlast RQ's default 180 s timeout.
cron.register(backups.daily_backup, queue_name="default", cron="30 3 * * *", job_timeout=3 * 3600)
cron.register(alerts.check, queue_name="default", interval=60)
cron.register(dashboard.sample, queue_name="default", interval=60)
cron.register(notify.notify_restocked, queue_name="default", interval=300)
