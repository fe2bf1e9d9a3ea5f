"""The job admin's actions: run the selected jobs' tables again (strategy, window and sample
size from the job unless the operator changes them, on an intermediate form) and resume
FAILED jobs (their unfinished segments run again, from the list or from the job's page).
``ReconciliationJobAdmin`` (``admin.jobs``) mixes them in; both need its "trigger"
permission.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse

from reconciliation.admin.common import JobOptionsForm, job_options_page, job_url, start_jobs
from reconciliation.admin.segments import resume
from reconciliation.models import ReconciliationJob

#: Set by the job page's Resume button: come back to the job's page, not the list.
FROM_JOB_PAGE = "_from_job_page"


class JobActions(admin.ModelAdmin):
    """The job admin's actions (module docstring)."""

    @admin.action(description="Run again…", permissions=["trigger"])
    def run_again_now(
        self, request: HttpRequest, queryset: QuerySet[ReconciliationJob]
    ) -> TemplateResponse | None:
        """Start each selected job's table again: same strategy unless another is chosen;
        the window and sample size prefilled from the job (one job selected), editable."""
        latest: dict[str, ReconciliationJob] = {}
        for old in queryset.order_by("-started_at"):
            latest.setdefault(old.table_name, old)
        if "apply" in request.POST:
            form = JobOptionsForm(request.POST, blank_strategy_label="Same as the job")
            if form.is_valid():
                defaults = {name: job.validation_strategy for name, job in latest.items()}
                start_jobs(self, request, form, defaults)
                return None
        else:
            initial: dict[str, Any] = {}
            if len(latest) == 1:
                (old,) = latest.values()
                parameters = old.parameters or {}
                initial = {
                    "window_from": parameters.get("from"),
                    "window_to": parameters.get("to"),
                    "sample_size": parameters.get("sample_size"),
                }
            form = JobOptionsForm(initial=initial, blank_strategy_label="Same as the job")
        return job_options_page(
            self,
            request,
            form,
            title="Run again",
            intro="Start these tables again now (the latest selected job of each):",
            targets=[
                f"{job.table_name}: {job.validation_strategy} of "
                f"{job.started_at:%Y-%m-%d %H:%M} UTC"
                + (f" (window {_window(job)})" if _window(job) else "")
                for job in latest.values()
            ],
        )

    @admin.action(
        description="Resume failed jobs (redo unfinished segments)", permissions=["trigger"]
    )
    def resume_failed_jobs(
        self, request: HttpRequest, queryset: QuerySet[ReconciliationJob]
    ) -> HttpResponseRedirect | None:
        """Resume each selected FAILED job: its unfinished segments run again, the finished
        ones are kept (``reconciliation.jobs.resume_job``, as the API's resume).  A message
        per job; from the job's page (its Resume button), back to that page."""
        jobs = list(queryset.order_by("-started_at"))
        for job in jobs:
            resume(self, request, job)
        if request.POST.get(FROM_JOB_PAGE) and len(jobs) == 1:
            return HttpResponseRedirect(job_url(jobs[0].pk))
        return None


def _window(job: ReconciliationJob) -> str:
    parameters = job.parameters or {}
    if not (parameters.get("from") or parameters.get("to")):
        return ""
    return f"{parameters.get('from') or '…'} – {parameters.get('to') or '…'}"
