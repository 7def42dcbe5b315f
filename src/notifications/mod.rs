//! The notification inbox (the truth: push is unreliable), per-account
//! preferences, and the producers that turn activity into notifications.

pub mod day;
pub mod inbox;
pub mod produce;
pub mod texts;
pub mod timing;

use sqlx::AnyConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::notifications::produce::{Outgoing, notify, preferences};
use crate::notifications::texts::TextParams;
use crate::push::payload::NotificationKind;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(inbox::list))
        .routes(routes!(inbox::unread_count))
        .routes(routes!(inbox::mark_read))
        .routes(routes!(inbox::mark_all_read))
        .routes(routes!(inbox::get_preferences, inbox::update_preferences))
        .routes(routes!(inbox::personal_message))
}

#[derive(sqlx::FromRow)]
struct PostContext {
    circle_name: String,
    author_pseudonym: String,
    author_account_id: String,
}

/// A post was written: tell the author of the post it replies to, and the
/// circle's other members as each prefers (immediately, in a digest, or not).
pub async fn on_post_created(
    conn: &mut AnyConnection,
    now: i64,
    post_id: &str,
    reply_to_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    let ctx: PostContext = sqlx::query_as(
        "SELECT c.name AS circle_name, m.pseudonym AS author_pseudonym, m.account_id AS author_account_id
         FROM posts p JOIN circles c ON c.id = p.circle_id JOIN memberships m ON m.id = p.author_membership_id
         WHERE p.id = $1",
    )
    .bind(post_id)
    .fetch_one(&mut *conn)
    .await?;
    let circle_id: String = sqlx::query_scalar("SELECT circle_id FROM posts WHERE id = $1")
        .bind(post_id)
        .fetch_one(&mut *conn)
        .await?;
    let params = TextParams {
        circle_name: ctx.circle_name.clone(),
        actor: ctx.author_pseudonym.clone(),
        ..Default::default()
    };

    let mut replied_to: Option<String> = None;
    if let Some(parent) = reply_to_id {
        let parent_author: Option<String> = sqlx::query_scalar(
            "SELECT m.account_id FROM posts p JOIN memberships m ON m.id = p.author_membership_id
             WHERE p.id = $1 AND m.left_at IS NULL",
        )
        .bind(parent)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(account_id) = parent_author.filter(|a| *a != ctx.author_account_id) {
            if preferences(conn, &account_id).await?.replies {
                let out = Outgoing {
                    account_id: account_id.clone(),
                    kind: NotificationKind::Reply,
                    params: params.clone(),
                    circle_id: Some(circle_id.clone()),
                    post_id: Some(post_id.to_owned()),
                    membership_id: None,
                    alert_id: None,
                    deliver_at: None,
                    inbox_only: false,
                };
                notify(conn, now, &out).await?;
            }
            replied_to = Some(account_id);
        }
    }

    let others: Vec<String> = sqlx::query_scalar(
        "SELECT account_id FROM memberships WHERE circle_id = $1 AND left_at IS NULL AND account_id <> $2",
    )
    .bind(&circle_id)
    .bind(&ctx.author_account_id)
    .fetch_all(&mut *conn)
    .await?;
    for account_id in others
        .into_iter()
        .filter(|a| Some(a) != replied_to.as_ref())
    {
        let kind = match preferences(conn, &account_id).await?.new_posts.as_str() {
            "immediate" => NotificationKind::NewPost,
            "digest" => NotificationKind::PostDigest,
            _ => continue,
        };
        let out = Outgoing {
            account_id,
            kind,
            params: params.clone(),
            circle_id: Some(circle_id.clone()),
            post_id: Some(post_id.to_owned()),
            membership_id: None,
            alert_id: None,
            deliver_at: None,
            inbox_only: false,
        };
        notify(conn, now, &out).await?;
    }
    Ok(())
}

/// Someone reacted to a post: tell its author, if they want to know.
pub async fn on_reaction(
    conn: &mut AnyConnection,
    now: i64,
    post_id: &str,
    reactor_membership_id: &str,
    kind: &str,
) -> Result<(), sqlx::Error> {
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT a.account_id, c.name, r.pseudonym, p.circle_id
         FROM posts p
         JOIN memberships a ON a.id = p.author_membership_id
         JOIN circles c ON c.id = p.circle_id
         JOIN memberships r ON r.id = $2
         WHERE p.id = $1 AND a.left_at IS NULL AND a.id <> $2",
    )
    .bind(post_id)
    .bind(reactor_membership_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((author, circle_name, reactor, circle_id)) = row else {
        return Ok(());
    };
    if !preferences(conn, &author).await?.reactions {
        return Ok(());
    }
    let out = Outgoing {
        account_id: author,
        kind: NotificationKind::Reaction,
        params: TextParams {
            circle_name,
            actor: reactor,
            reaction: Some(kind.to_owned()),
            ..Default::default()
        },
        circle_id: Some(circle_id),
        post_id: Some(post_id.to_owned()),
        membership_id: None,
        alert_id: None,
        deliver_at: None,
        inbox_only: false,
    };
    notify(conn, now, &out).await?;
    Ok(())
}
