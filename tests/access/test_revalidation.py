"""What the database says now of many grants: users, sessions, permissions, per-job access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobupdates.access import revalidation
from jobupdates.access.revalidation import gather
from jobupdates.protocol.authority import Action, Grant, judge
from tests.support.sessions import session_of

pytestmark = pytest.mark.django_db

PERMISSION = "jobupdates.view_all_jobs"


def view_all() -> Permission:
    return Permission.objects.get(codename="view_all_jobs")


def grant(user: User, session: str | None = None, jobs: set[str] | None = None) -> Grant:
    held = None if jobs is None else frozenset(jobs)
    return Grant(str(user.pk), session, user.get_session_auth_hash(), held)


def test_users_sessions_and_permission_are_found_in_a_few_queries_for_many_grants():
    staff = User.objects.create_user("staff", password="pw-12345678", is_staff=True)
    viewers = [User.objects.create_user(f"v{n}", password="pw-12345678") for n in range(30)]
    group = Group.objects.create(name="viewers")
    group.permissions.add(view_all())
    for viewer in viewers[:10]:
        viewer.groups.add(group)
    for viewer in viewers[10:20]:
        viewer.user_permissions.add(view_all())
    grants = [grant(user, session_of(user)) for user in [staff, *viewers]]
    with CaptureQueriesContext(connection) as queries:
        facts = gather(grants)
    assert len(queries) == 3, [q["sql"][:80] for q in queries]  # users, sessions, permission
    actions = [judge(g, facts).action for g in grants]
    assert actions == [Action.KEEP] * 21 + [Action.CLOSE_PERMISSION] * 10


def test_a_session_deleted_or_expired_is_gone_and_a_password_change_ends_every_session():
    ann = User.objects.create_user("ann", password="pw-12345678", is_staff=True)
    kept, deleted, expired = (session_of(ann) for _ in range(3))
    Session.objects.filter(session_key=deleted).delete()
    Session.objects.filter(session_key=expired).update(expire_date=timezone.now() - timedelta(1))
    grants = [grant(ann, key) for key in (kept, deleted, expired)]
    facts = gather(grants)
    assert [judge(g, facts).action for g in grants] == [
        Action.KEEP,
        Action.CLOSE_IDENTITY,
        Action.CLOSE_IDENTITY,
    ]
    ann.set_password("another-password-1")
    ann.save()
    assert judge(grants[0], gather(grants[:1])).why.startswith("the password changed")


def test_a_deactivated_or_deleted_user_and_one_who_lost_staff(settings):
    ann = User.objects.create_user("ann", password="pw-12345678", is_staff=True)
    bob = User.objects.create_user("bob", password="pw-12345678", is_staff=True)
    cy = User.objects.create_user("cy", password="pw-12345678", is_staff=True)
    grants = [grant(ann), grant(bob), grant(cy)]
    User.objects.filter(pk=ann.pk).update(is_active=False)  # no signal: what the sweep sees
    User.objects.filter(pk=bob.pk).delete()
    User.objects.filter(pk=cy.pk).update(is_staff=False)
    facts = gather(grants)
    assert [judge(g, facts).why for g in grants] == [
        "the user was deactivated",
        "the user no longer exists",
        "no longer allowed to receive every job",
    ]


def test_a_custom_authorizer_is_asked_per_user_and_subscribed_job(settings):
    settings.JOBUPDATES_JOB_AUTHORIZER = "tests.access.test_revalidation.only_even"
    ann = User.objects.create_user("ann", password="pw-12345678")
    grants = [grant(ann, jobs={"j-2", "j-3"}), grant(ann, jobs={"j-3"}), grant(ann, jobs={"j-4"})]
    facts = gather(grants)
    assert [judge(g, facts).action for g in grants] == [
        Action.NARROW,
        Action.CLOSE_PERMISSION,
        Action.KEEP,
    ]
    assert judge(grants[0], facts).jobs == frozenset({"j-3"})


def only_even(user: object, job_id: str) -> bool:
    return int(job_id.rsplit("-", 1)[1]) % 2 == 0


def test_queries_are_chunked(monkeypatch):
    monkeypatch.setattr(revalidation, "CHUNK", 3)
    users = [
        User.objects.create_user(f"u{n}", password="pw-12345678", is_staff=True) for n in range(7)
    ]
    grants = [grant(user, session_of(user)) for user in users]
    with CaptureQueriesContext(connection) as queries:
        facts = gather(grants)
    assert len(queries) == 6  # 3 chunks of users, 3 of sessions
    assert all(judge(g, facts).action is Action.KEEP for g in grants)
