"""Admin: the job queues: depths, failed jobs with their error, retry or delete (RQ's own registries)."""

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from storefront.admin import ADMIN_LINKS, bp
from storefront.audit import services as audit
from storefront.db import get_session
from storefront.extensions import client_ip, redis_client
from storefront.queues import QUEUES, get_queue

ADMIN_LINKS.append(("admin.job_list", "Jobs"))
SHOWN_FAILURES = 50


def _failed(queue_name: str) -> FailedJobRegistry:
    return FailedJobRegistry(queue=get_queue(queue_name))


@bp.get("/jobs")
def job_list():
    """Every queue's depth, what is running or scheduled, and the latest failures with their errors."""
    queues, failures = [], []
    for name in QUEUES:
        queue = get_queue(name)
        failed = _failed(name)
        queues.append(
            {
                "name": name,
                "queued": queue.count,
                "started": StartedJobRegistry(queue=queue).count,
                "scheduled": ScheduledJobRegistry(queue=queue).count,
                "failed": failed.count,
            }
        )
        ids = failed.get_job_ids(0, SHOWN_FAILURES - 1)
        for job in Job.fetch_many(ids, connection=redis_client()):
            if job is not None:
                result = job.latest_result()
                failures.append(
                    {"queue": name, "job": job, "error": (result.exc_string if result else "") or ""}
                )
    return render_template("admin/jobs.html", queues=queues, failures=failures)


def _failed_job(queue_name: str, job_id: str) -> tuple[FailedJobRegistry, Job]:
    if queue_name not in QUEUES:
        abort(404)
    registry = _failed(queue_name)
    if job_id not in registry.get_job_ids():
        abort(404)
    try:
        return registry, Job.fetch(job_id, connection=redis_client())
    except NoSuchJobError:
        abort(404)


@bp.post("/jobs/<queue_name>/<job_id>/retry")
def job_retry(queue_name: str, job_id: str):
    """Put a failed job back on its queue (jobs are idempotent, so a retry is safe)."""
    registry, job = _failed_job(queue_name, job_id)
    registry.requeue(job)
    session = get_session()
    audit.record(
        session, current_user, "job.retry", "job", job_id, after={"func": job.func_name}, ip=client_ip()
    )
    session.commit()
    flash(f"Job {job.func_name} is queued again.", "success")
    return redirect(url_for(".job_list"), 303)


@bp.post("/jobs/<queue_name>/<job_id>/delete")
def job_delete(queue_name: str, job_id: str):
    """Forget a failed job for good."""
    registry, job = _failed_job(queue_name, job_id)
    registry.remove(job, delete_job=True)
    session = get_session()
    audit.record(
        session, current_user, "job.delete", "job", job_id, before={"func": job.func_name}, ip=client_ip()
    )
    session.commit()
    flash(f"Job {job.func_name} was deleted.", "success")
    return redirect(url_for(".job_list"), 303)
