"""Admin jobs page: queue depths and failed jobs from RQ's registries, with retry and delete."""

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import select

from storefront.audit.models import AuditEntry
from tests.helpers import csrf_token, staff_login


def explode(order_id):
    raise RuntimeError(f"gateway exploded for order {order_id}")


@pytest.fixture
def failed_job(app):
    """A job that really failed in a real RQ worker, on the app's (in-process) Redis."""
    connection = app.extensions["redis"]
    queue = Queue("payments", connection=connection)
    job = queue.enqueue(explode, 42)
    SimpleWorker([queue], connection=connection).work(burst=True)
    return job


def test_jobs_page_shows_depths_and_the_failure(client, session, failed_job):
    staff_login(client, session)
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "test_admin_jobs.explode" in page and "gateway exploded for order 42" in page


def test_retry_puts_the_job_back_and_is_audited(app, client, session, failed_job):
    staff_login(client, session)
    response = client.post(
        f"/admin/jobs/payments/{failed_job.id}/retry", data={"csrf_token": csrf_token(client)}
    )
    assert response.status_code == 303
    assert failed_job.id in Queue("payments", connection=app.extensions["redis"]).job_ids
    assert (
        session.scalar(select(AuditEntry.action).where(AuditEntry.entity_id == failed_job.id)) == "job.retry"
    )


def test_delete_forgets_the_job(app, client, session, failed_job):
    staff_login(client, session)
    client.post(f"/admin/jobs/payments/{failed_job.id}/delete", data={"csrf_token": csrf_token(client)})
    assert "gateway exploded" not in client.get("/admin/jobs").get_data(as_text=True)


def test_unknown_jobs_and_queues_are_404(client, session, failed_job):
    staff_login(client, session)
    token = csrf_token(client)
    assert client.post("/admin/jobs/payments/nope/retry", data={"csrf_token": token}).status_code == 404
    assert (
        client.post(f"/admin/jobs/evil/{failed_job.id}/retry", data={"csrf_token": token}).status_code == 404
    )
