"""The mismatch ledger (issue 11): one open difference per key across runs, healing by
covering runs, decisions that stick, re-check now, and inconclusive runs.

Real Cassandra and PostgreSQL: drift is planted in a pair of tables and jobs are run as the
worker runs them (``run_in_process``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from reconciliation.choices import AlertLevel, JobStatus, MismatchType, ResolutionStatus
from reconciliation.choices import ValidationStrategy as S
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.models import JobFinding, Mismatch, MismatchCount, ReconciliationJob
from tests.factories import UserFactory
from tests.monitoring_support import parse_samples, sample
from tests.support import latest_event

USERS_CASSANDRA = "id text PRIMARY KEY, email text, score int, updated_at timestamp"
USERS_POSTGRES = "id text PRIMARY KEY, email text, score int, updated_at timestamptz"
NOW = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=2)

# The planted drift: two changed rows, one row missing on each side.
DRIFTED = {
    "user-1": MismatchType.DATA_MISMATCH,
    "user-2": MismatchType.DATA_MISMATCH,
    "user-3": MismatchType.MISSING_IN_POSTGRES,
    "only-in-postgres": MismatchType.MISSING_IN_CASSANDRA,
}


def put_cassandra(cassandra: Any, table: str, row: tuple[Any, ...]) -> None:
    cassandra.execute(
        f"INSERT INTO {table} (id, email, score, updated_at) VALUES (%s, %s, %s, %s)", row
    )


def put_postgres(target: Any, table: str, row: tuple[Any, ...]) -> None:
    target.execute(
        f"INSERT INTO public.{table} (id, email, score, updated_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, score = EXCLUDED.score, "
        "updated_at = EXCLUDED.updated_at",
        row,
    )


def run(mapping: Any, strategy: str = S.CHECKSUM, **options: Any) -> ReconciliationJob:
    job = create_job(mapping, strategy, parameters=build_parameters(strategy, **options))
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job


def open_keys(mapping: Any) -> dict[str, str]:
    rows = Mismatch.objects.filter(table_name=mapping.name).open()
    keys = list(rows.values_list("primary_key_value", "mismatch_type"))
    assert len(keys) == len(dict(keys)), f"a key has two open differences: {keys}"
    return dict(keys)


def ledger(mapping: Any, key: str) -> Mismatch:
    return Mismatch.objects.get(table_name=mapping.name, primary_key_value=key)


@pytest.fixture
def alice(db: None) -> Any:
    return UserFactory(username="alice")


@pytest.fixture
def users(cassandra: Any, target: Any, table_pair: Any) -> Any:
    """Ten users on both sides, then the planted drift (``DRIFTED``)."""
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    for i in range(10):
        row = (f"user-{i}", f"u{i}@example.com", i, NOW)
        put_cassandra(cassandra, mapping.name, row)
        put_postgres(target, mapping.name, row)
    table = mapping.name
    target.execute(f"UPDATE public.{table} SET email = 'stale@example.com' WHERE id = 'user-1'")
    target.execute(f"UPDATE public.{table} SET score = -2 WHERE id = 'user-2'")
    target.execute(f"DELETE FROM public.{table} WHERE id = 'user-3'")
    put_postgres(target, table, ("only-in-postgres", "p@example.com", 0, NOW))
    return mapping


def fix_on_target(target: Any, mapping: Any, key: str) -> None:
    """Make the target row equal to the Cassandra row the fixture wrote."""
    i = int(key.split("-")[1])
    put_postgres(target, mapping.name, (key, f"u{i}@example.com", i, NOW))


# -- 1. one open difference per key -------------------------------------------------------------


def test_repeated_runs_leave_exactly_one_open_difference_per_drifted_key(users, reader) -> None:
    jobs = [run(users) for _ in range(3)]

    assert open_keys(users) == DRIFTED
    assert Mismatch.objects.filter(table_name=users.name).count() == len(DRIFTED)
    for key in DRIFTED:
        mismatch = ledger(users, key)
        assert mismatch.times_seen == 3
        assert mismatch.job_id == jobs[0].job_id  # the job that first found it
        assert mismatch.last_job_id == jobs[-1].job_id
        assert mismatch.first_seen_at <= mismatch.last_seen_at
        assert mismatch.detected_at == mismatch.first_seen_at
    # Each job still reports what it found.
    for job in jobs:
        assert job.mismatch_count == len(DRIFTED)
        assert job.drift_percentage == pytest.approx(100 * 4 / 11)
        found = set(
            JobFinding.objects.filter(job=job).values_list("mismatch__primary_key_value", flat=True)
        )
        assert found == set(DRIFTED)

    response = reader.get(
        "/reconciliation/mismatches", {"table": users.name, "resolution_status": "PENDING"}
    )
    assert response.status_code == 200
    listed = response.json()["mismatches"]
    assert sorted(m["primary_key_value"] for m in listed) == sorted(DRIFTED)
    assert response.json()["total"] == len(DRIFTED)
    assert {m["times_seen"] for m in listed} == {3}
    assert {m["last_job_id"] for m in listed} == {str(jobs[-1].job_id)}
    assert {m["job_id"] for m in listed} == {str(jobs[0].job_id)}

    by_job = reader.get("/reconciliation/mismatches", {"job_id": str(jobs[1].job_id)}).json()
    assert sorted(m["primary_key_value"] for m in by_job["mismatches"]) == sorted(DRIFTED)

    detail = reader.get(f"/reconciliation/jobs/{jobs[1].job_id}").json()
    assert sorted(m["primary_key_value"] for m in detail["mismatches"]) == sorted(DRIFTED)
    assert detail["keys_examined"] == 11 and detail["inconclusive"] is False


def test_postgresql_refuses_a_second_open_difference_for_a_key(users) -> None:
    job = run(users)
    with pytest.raises(IntegrityError), transaction.atomic():
        Mismatch.objects.create(
            job=job,
            table_name=users.name,
            primary_key_value="user-1",
            mismatch_type=MismatchType.DATA_MISMATCH,
        )


def test_a_difference_whose_type_changes_is_the_same_object_with_the_new_type(
    target, users
) -> None:
    run(users)
    before = ledger(users, "user-1")
    target.execute(f"DELETE FROM public.{users.name} WHERE id = 'user-1'")

    run(users)

    after = ledger(users, "user-1")
    assert after.mismatch_id == before.mismatch_id
    assert after.mismatch_type == MismatchType.MISSING_IN_POSTGRES
    assert after.postgres_data is None and after.postgres_checksum is None
    assert after.times_seen == 2


# -- 2. healing closes ----------------------------------------------------------------------


def test_a_key_fixed_on_the_target_is_closed_by_the_next_covering_checksum(target, users) -> None:
    run(users)
    fix_on_target(target, users, "user-1")

    job = run(users)

    healed = ledger(users, "user-1")
    assert healed.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert str(job.job_id) in latest_event(healed).reason
    assert latest_event(healed).job_id == job.pk
    assert healed.resolution_notes == ""  # notes are the operators' words
    assert healed.resolved_at is not None
    assert open_keys(users) == {k: v for k, v in DRIFTED.items() if k != "user-1"}


def test_row_count_covers_no_key_and_closes_nothing(target, users) -> None:
    run(users)
    fix_on_target(target, users, "user-1")

    run(users, S.ROW_COUNT)

    assert ledger(users, "user-1").resolution_status == ResolutionStatus.PENDING


def test_timestamp_range_closes_only_the_fixed_keys_in_its_window(cassandra, target, users) -> None:
    # user-2 is re-written at LATER on both sides (now equal); user-1 is fixed but stays at NOW.
    run(users)
    put_cassandra(cassandra, users.name, ("user-2", "u2@example.com", 2, LATER))
    put_postgres(target, users.name, ("user-2", "u2@example.com", 2, LATER))
    fix_on_target(target, users, "user-1")

    window = {
        "window_from": LATER - dt.timedelta(hours=1),
        "window_to": LATER + dt.timedelta(hours=1),
    }
    job = run(users, S.TIMESTAMP_RANGE, **window)

    assert job.keys_examined == 1
    assert ledger(users, "user-2").resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert str(job.job_id) in latest_event(ledger(users, "user-2")).reason
    # Equal now, but outside the window: this run did not look at it.
    assert ledger(users, "user-1").resolution_status == ResolutionStatus.PENDING


def test_a_sample_of_the_whole_table_closes_what_it_found_equal(target, users) -> None:
    run(users)
    fix_on_target(target, users, "user-2")

    run(users, S.SAMPLE, sample_size=100)  # the table is smaller: examined whole

    assert ledger(users, "user-2").resolution_status == ResolutionStatus.AUTO_RESOLVED


def test_a_random_sample_closes_only_keys_it_drew(cassandra, target, table_pair) -> None:
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    for i in range(100):
        row = (f"user-{i}", f"u{i}@example.com", i, NOW)
        put_cassandra(cassandra, mapping.name, row)
        put_postgres(target, mapping.name, (*row[:2], -1 if i < 80 else i, NOW))
    run(mapping)
    assert len(open_keys(mapping)) == 80
    for i in range(80):
        fix_on_target(target, mapping, f"user-{i}")

    job = run(mapping, S.SAMPLE, sample_size=10)

    closed = Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.AUTO_RESOLVED
    ).count()
    assert job.keys_examined < 80
    assert 1 <= closed <= job.keys_examined


# -- 3. decisions stick ---------------------------------------------------------------------


def test_an_ignored_key_stays_ignored_until_its_rows_change(cassandra, users, alice) -> None:
    run(users)
    ignored = ledger(users, "user-1")
    ignored.resolve(alice, ResolutionStatus.IGNORED, "known test row")

    run(users)
    run(users)

    ignored.refresh_from_db()
    assert ignored.resolution_status == ResolutionStatus.IGNORED
    assert ignored.times_seen == 3
    assert open_keys(users)["user-1"] == MismatchType.DATA_MISMATCH  # one row, still ignored

    put_cassandra(cassandra, users.name, ("user-1", "new@example.com", 1, LATER))
    run(users)

    ignored.refresh_from_db()
    assert ignored.resolution_status == ResolutionStatus.PENDING
    assert "known test row" in ignored.resolution_notes
    assert "changed since it was ignored" in latest_event(ignored).reason
    assert (latest_event(ignored).from_status, latest_event(ignored).to_status) == (
        ResolutionStatus.IGNORED,
        ResolutionStatus.PENDING,
    )
    assert ignored.cassandra_data["email"] == "new@example.com"
    assert Mismatch.objects.filter(table_name=users.name, primary_key_value="user-1").count() == 1


def test_a_manually_resolved_difference_found_again_reopens_the_same_object(
    users, alice, reader
) -> None:
    run(users)
    resolved = ledger(users, "user-2")
    resolved.resolve(alice, ResolutionStatus.MANUAL_RESOLVED, "synced by hand")

    job = run(users)

    again = ledger(users, "user-2")
    assert again.mismatch_id == resolved.mismatch_id
    assert again.resolution_status == ResolutionStatus.PENDING
    assert again.times_seen == 2
    assert again.reappeared_at is not None
    assert again.resolved_at is None and again.resolved_by is None
    assert "Reappeared after resolution" in latest_event(again).reason
    assert str(job.job_id) in latest_event(again).reason
    assert again.resolution_notes == "synced by hand"
    (row,) = [
        m
        for m in reader.get("/reconciliation/mismatches", {"table": users.name}).json()[
            "mismatches"
        ]
        if m["primary_key_value"] == "user-2"
    ]
    assert row["reappeared_at"] is not None and row["times_seen"] == 2


# -- 4. re-check now --------------------------------------------------------------------------


def test_recheck_closes_a_difference_fixed_since_it_was_found(target, users, operator) -> None:
    run(users)
    mismatch = ledger(users, "user-1")
    fix_on_target(target, users, "user-1")

    response = operator.post(f"/reconciliation/mismatches/{mismatch.mismatch_id}/recheck")

    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "closed"
    assert response.json()["mismatch"]["resolution_status"] == "AUTO_RESOLVED"
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert mismatch.resolved_by == operator.user
    assert f"Re-checked by {operator.user.username}" in latest_event(mismatch).reason
    assert latest_event(mismatch).actor_kind == "recheck"


def test_recheck_refreshes_a_difference_that_still_stands(cassandra, users, operator) -> None:
    run(users)
    mismatch = ledger(users, "user-1")
    url = f"/reconciliation/mismatches/{mismatch.mismatch_id}/recheck"

    assert operator.post(url).json()["outcome"] == "still_different"
    put_cassandra(cassandra, users.name, ("user-1", "moved@example.com", 1, LATER))
    assert operator.post(url).json()["outcome"] == "changed"

    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    assert mismatch.times_seen == 3
    assert mismatch.cassandra_data["email"] == "moved@example.com"


def test_recheck_needs_the_resolve_permission_and_a_known_mismatch(users, reader, operator) -> None:
    run(users)
    mismatch = ledger(users, "user-1")

    denied = reader.post(f"/reconciliation/mismatches/{mismatch.mismatch_id}/recheck")
    missing = operator.post(
        "/reconciliation/mismatches/00000000-0000-0000-0000-000000000000/recheck"
    )

    assert denied.status_code == 403
    assert missing.status_code == 404
    assert set(missing.json()) >= {"error", "detail", "fields"}


# -- 5 and 6. conclusive verdicts ---------------------------------------------------------------


def test_an_empty_window_is_inconclusive(users, reader, client) -> None:
    job = run(users, S.TIMESTAMP_RANGE)  # default window: the last interval; rows are at NOW

    assert job.keys_examined == 0
    assert job.is_inconclusive
    assert job.drift_percentage is None
    assert job.alert_fired is False and job.alert_level == AlertLevel.NONE
    body = reader.get(f"/reconciliation/jobs/{job.job_id}").json()
    assert body["inconclusive"] is True and body["drift_percentage"] is None
    assert body["window"] == {"from": job.parameters["from"], "to": job.parameters["to"]}
    assert ReconciliationJob.objects.latest_conclusive().filter(pk=job.pk).exists() is False
    samples = parse_samples(client.get("/metrics").content.decode())
    drift = "cdc_reconciliation_drift_percentage"
    assert sample(samples, drift, table=users.name, strategy="TIMESTAMP_RANGE") is None


def test_a_sample_after_a_checksum_leaves_the_checksum_series_untouched(users, client) -> None:
    full = run(users)
    estimate = run(users, S.SAMPLE, sample_size=5)

    samples = parse_samples(client.get("/metrics").content.decode())

    drift = "cdc_reconciliation_drift_percentage"
    assert sample(samples, drift, table=users.name, strategy="CHECKSUM") == pytest.approx(
        full.drift_percentage
    )
    assert sample(samples, drift, table=users.name, strategy="SAMPLE") == pytest.approx(
        estimate.drift_percentage
    )
    assert sample(samples, "cdc_reconciliation_cassandra_rows", table=users.name) == 10
    latest = {
        j.validation_strategy: j.pk
        for j in ReconciliationJob.objects.latest_conclusive().filter(table_name=users.name)
    }
    assert latest == {S.CHECKSUM: full.pk, S.SAMPLE: estimate.pk}


def test_a_sample_alerts_only_when_its_lower_bound_passes_the_threshold(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    for i in range(60):
        row = (f"user-{i}", f"u{i}@example.com", i, NOW)
        put_cassandra(cassandra, mapping.name, row)
        put_postgres(target, mapping.name, row)
    target.execute(f"UPDATE public.{mapping.name} SET score = -1 WHERE id = 'user-7'")

    full = run(mapping)
    estimate = run(mapping, S.SAMPLE, sample_size=100)  # 1 of 60: 1.67%, lower bound ~0.3%

    assert full.alert_level == AlertLevel.WARNING  # 1.67% > 1%
    assert estimate.drift_percentage == pytest.approx(100 / 60)
    assert estimate.drift_ci_low is not None and estimate.drift_ci_low < 1.0
    assert estimate.alert_level == AlertLevel.NONE and estimate.alert_fired is False


def test_a_composite_key_is_one_difference_across_runs_and_can_be_rechecked(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(
        "tenant text, day date, seq int, note text, PRIMARY KEY ((tenant, day), seq)",
        "tenant text, day date, seq int, note text, PRIMARY KEY (tenant, day, seq)",
    )
    insert = "INSERT INTO {} (tenant, day, seq, note) VALUES (%s, %s, %s, %s)"
    for seq in range(3):
        values = ("acme", dt.date(2025, 11, 25), seq, f"n{seq}")
        cassandra.execute(insert.format(mapping.name), values)
        target.execute(insert.format(f"public.{mapping.name}"), values)
    target.execute(f"UPDATE public.{mapping.name} SET note = 'x' WHERE seq = 2")

    run(mapping)
    run(mapping)

    (key,) = open_keys(mapping)
    assert key == '["acme","2025-11-25","2"]'
    mismatch = ledger(mapping, key)
    assert mismatch.times_seen == 2
    target.execute(f"UPDATE public.{mapping.name} SET note = 'n2' WHERE seq = 2")
    response = operator.post(f"/reconciliation/mismatches/{mismatch.mismatch_id}/recheck")
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "closed"


def test_reopening_a_resolved_difference_is_refused_while_the_key_has_an_open_one(
    users, alice
) -> None:
    job = run(users)
    old = Mismatch.objects.create(
        job=job,
        table_name=users.name,
        primary_key_value="user-1",
        mismatch_type=MismatchType.DATA_MISMATCH,
        resolution_status=ResolutionStatus.MANUAL_RESOLVED,
    )

    with pytest.raises(ValueError, match="already has an open mismatch"):
        old.reopen(alice, "try again")

    old.refresh_from_db()
    assert old.resolution_status == ResolutionStatus.MANUAL_RESOLVED


# -- the list's exact totals follow the ledger's bulk writes ------------------------------------


def test_the_lists_kept_totals_stay_exact_through_upserts_heals_ignores_and_rechecks(
    cassandra, target, users, alice, operator
) -> None:
    """The mismatch list's ``total`` comes from trigger-kept counts (MismatchCount); the
    ledger writes through COPY + INSERT ... ON CONFLICT, bulk heals and model methods."""

    def assert_counts_exact() -> None:
        for status in ResolutionStatus.values:
            for kind in MismatchType.values:
                rows = Mismatch.objects.filter(
                    table_name=users.name, resolution_status=status, mismatch_type=kind
                )
                kept = MismatchCount.objects.total(
                    table_name=users.name, resolution_status=status, mismatch_type=kind
                )
                assert kept == rows.count(), (status, kind)

    run(users)
    run(users)  # every key found again: refreshed in place
    assert_counts_exact()

    ledger(users, "user-2").resolve(alice, ResolutionStatus.IGNORED, "known")
    fix_on_target(target, users, "user-1")
    put_cassandra(cassandra, users.name, ("only-in-postgres", "p@example.com", 0, NOW))
    run(users)  # user-1 and only-in-postgres heal; user-2 stays ignored
    assert_counts_exact()
    assert open_keys(users) == {
        "user-2": MismatchType.DATA_MISMATCH,
        "user-3": MismatchType.MISSING_IN_POSTGRES,
    }

    fix_on_target(target, users, "user-3")
    response = operator.post(
        f"/reconciliation/mismatches/{ledger(users, 'user-3').mismatch_id}/recheck"
    )
    assert response.json()["outcome"] == "closed"
    assert_counts_exact()
    listed = operator.get(
        f"/reconciliation/mismatches?table={users.name}&resolution_status=PENDING"
    ).json()
    assert listed["total"] == 0 == len(listed["mismatches"])
