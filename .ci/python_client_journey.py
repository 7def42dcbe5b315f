"""A member's journey through the API with the Python client that
openapi-python-client generated from the committed spec (`.ci/python-client`):
join with an invite, read the feed, post (and retry the post), get a reply
from the worker, and sync. Run by `.ci/readme-walkthrough` against the server
of the README's walk-through, after its own blocks, with API, WORKER (the
worker's access token), CIRCLE and INVITE from them.

Every call goes through the generated code, so a spec change that breaks this
generator, or a response that the generated models cannot read, fails CI.
"""

import os
import sys
import uuid

from kring_api_client import AuthenticatedClient, Client
from kring_api_client.api.invites import invite_join, invite_preview
from kring_api_client.api.notifications import notifications_list
from kring_api_client.api.posts import circle_posts_create, circle_posts_list
from kring_api_client.models import (
    CreatePost,
    InvitePreview,
    JoinRequest,
    JoinResponse,
    Locale,
    NotificationPage,
    Post,
    PostPage,
    Problem,
)

API, WORKER, CIRCLE, INVITE = (os.environ[k] for k in ("API", "WORKER", "CIRCLE", "INVITE"))


def ok(value, kind):
    if not isinstance(value, kind):
        sys.exit(f"expected {kind.__name__}, got {value!r}")
    return value


anonymous = Client(base_url=API, raise_on_unexpected_status=True)
worker = AuthenticatedClient(base_url=API, token=WORKER, raise_on_unexpected_status=True)

# Join: read the invite and its agreement, then join with consent to it.
preview = ok(invite_preview.sync(INVITE, client=anonymous), InvitePreview)
joined = ok(
    invite_join.sync(
        client=anonymous,
        body=JoinRequest(
            code=INVITE,
            pseudonym="Klaproos",
            consent_version=preview.agreement.version,
            locale=Locale.NL,
            time_zone="Europe/Amsterdam",
        ),
        idempotency_key=str(uuid.uuid4()),
    ),
    JoinResponse,
)
member = AuthenticatedClient(
    base_url=API, token=joined.tokens.access_token, raise_on_unexpected_status=True
)

# The feed: the walk-through's post is there; keep the sync token.
feed = ok(circle_posts_list.sync(CIRCLE, client=member, limit=20), PostPage)
assert any(p.author.pseudonym == "Zonnebloem" for p in feed.items), feed
since = feed.sync_token

# Post, and retry with the same key after a "lost answer": one post.
key = str(uuid.uuid4())
body = CreatePost(body="Hallo allemaal, ik ben nieuw hier.")
post = ok(circle_posts_create.sync(CIRCLE, client=member, body=body, idempotency_key=key), Post)
again = ok(circle_posts_create.sync(CIRCLE, client=member, body=body, idempotency_key=key), Post)
assert again.id == post.id, (post, again)

# The worker replies.
reply = ok(
    circle_posts_create.sync(
        CIRCLE,
        client=worker,
        body=CreatePost(body="Welkom, Klaproos!", reply_to_id=post.id),
        idempotency_key=str(uuid.uuid4()),
    ),
    Post,
)

# Sync from the token: exactly the two new posts, oldest change first.
synced = ok(circle_posts_list.sync(CIRCLE, client=member, since=since), PostPage)
assert [p.id for p in synced.items] == [post.id, reply.id], synced.items

# The reply is in the member's inbox (an open enum: a known kind here).
inbox = ok(notifications_list.sync(client=member), NotificationPage)
assert any(getattr(n.kind, "value", n.kind) == "reply" for n in inbox.items), inbox.items

# A problem is read as a Problem with its code: joining again.
again = invite_join.sync(
    client=member,
    body=JoinRequest(code=INVITE, pseudonym="Klaproos 2", consent_version=preview.agreement.version),
    idempotency_key=str(uuid.uuid4()),
)
assert isinstance(again, Problem) and again.code == "already_in_circle", again

print("python client journey: ok")
