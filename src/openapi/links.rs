//! OpenAPI links for the main flows: what an app does next with a response
//! (open what it created, fetch the next page, sync from the token it got).
//! Generators and documentation tools show them beside the response.

use utoipa::Modify;
use utoipa::openapi::RefOr;
use utoipa::openapi::link::LinkBuilder;

use super::operations;

/// One link: from the success responses of an operation to another
/// operation, with the target's parameters as runtime expressions.
struct FlowLink {
    from: &'static str,
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    description: &'static str,
}

const NEXT_PAGE: &str =
    "The next page: the same list from `next_cursor` (only while it is not null).";
const NEXT_PAGE_OF_SYNC: &str = "The next page: the same list from `next_cursor` (only while it \
     is not null). When the listing was a sync, send its `since` again with the cursor.";
const SYNC: &str =
    "Later: everything created or changed since this response, from its `sync_token`.";

/// The flows. A test checks that each names real operations, parameters
/// and response fields.
const LINKS: &[FlowLink] = &[
    FlowLink {
        from: "auth_login",
        name: "me",
        to: "me_get",
        parameters: &[],
        description: "Your account, with the access token from `tokens`.",
    },
    FlowLink {
        from: "auth_setup",
        name: "me",
        to: "me_get",
        parameters: &[],
        description: "Your account, with the access token from `tokens`.",
    },
    FlowLink {
        from: "auth_recover",
        name: "me",
        to: "me_get",
        parameters: &[],
        description: "Your account on this phone, with the access token from `tokens`.",
    },
    FlowLink {
        from: "invite_preview",
        name: "circle",
        to: "circle_get",
        parameters: &[("circle_id", "$response.body#/circle_id")],
        description: "The circle, once you have joined it (`invite_join`).",
    },
    FlowLink {
        from: "invite_join",
        name: "me",
        to: "me_get",
        parameters: &[],
        description: "Your account (with the access token from `tokens` when joining made it).",
    },
    FlowLink {
        from: "invite_join",
        name: "circle",
        to: "circle_get",
        parameters: &[("circle_id", "$response.body#/membership/circle_id")],
        description: "The circle you joined.",
    },
    FlowLink {
        from: "invite_join",
        name: "feed",
        to: "circle_posts_list",
        parameters: &[("circle_id", "$response.body#/membership/circle_id")],
        description: "The circle's feed.",
    },
    FlowLink {
        from: "circles_list",
        name: "next_page",
        to: "circles_list",
        parameters: &[("cursor", "$response.body#/next_cursor")],
        description: NEXT_PAGE,
    },
    FlowLink {
        from: "circles_create",
        name: "circle",
        to: "circle_get",
        parameters: &[("circle_id", "$response.body#/id")],
        description: "The circle you created.",
    },
    FlowLink {
        from: "circles_create",
        name: "invite",
        to: "circle_invites_create",
        parameters: &[("circle_id", "$response.body#/id")],
        description: "An invite code for its first members.",
    },
    FlowLink {
        from: "circle_invites_create",
        name: "preview",
        to: "invite_preview",
        parameters: &[("code", "$response.body#/code")],
        description: "What someone with the code sees before joining.",
    },
    FlowLink {
        from: "circle_invites_create",
        name: "revoke",
        to: "circle_invite_revoke",
        parameters: &[
            ("circle_id", "$request.path.circle_id"),
            ("invite_id", "$response.body#/id"),
        ],
        description: "Withdraw the invite.",
    },
    FlowLink {
        from: "circle_posts_list",
        name: "next_page",
        to: "circle_posts_list",
        parameters: &[
            ("circle_id", "$request.path.circle_id"),
            ("cursor", "$response.body#/next_cursor"),
        ],
        description: NEXT_PAGE_OF_SYNC,
    },
    FlowLink {
        from: "circle_posts_list",
        name: "sync",
        to: "circle_posts_list",
        parameters: &[
            ("circle_id", "$request.path.circle_id"),
            ("since", "$response.body#/sync_token"),
        ],
        description: SYNC,
    },
    FlowLink {
        from: "circle_posts_create",
        name: "post",
        to: "post_get",
        parameters: &[("post_id", "$response.body#/id")],
        description: "The post you wrote.",
    },
    FlowLink {
        from: "circle_posts_create",
        name: "sync",
        to: "circle_posts_list",
        parameters: &[("circle_id", "$request.path.circle_id")],
        description: "The feed, synced from your last `sync_token`: your post comes with it.",
    },
    FlowLink {
        from: "circle_checkins_list",
        name: "next_page",
        to: "circle_checkins_list",
        parameters: &[
            ("circle_id", "$request.path.circle_id"),
            ("cursor", "$response.body#/next_cursor"),
        ],
        description: NEXT_PAGE_OF_SYNC,
    },
    FlowLink {
        from: "circle_checkins_list",
        name: "sync",
        to: "circle_checkins_list",
        parameters: &[
            ("circle_id", "$request.path.circle_id"),
            ("since", "$response.body#/sync_token"),
        ],
        description: SYNC,
    },
    FlowLink {
        from: "notifications_list",
        name: "next_page",
        to: "notifications_list",
        parameters: &[("cursor", "$response.body#/next_cursor")],
        description: NEXT_PAGE_OF_SYNC,
    },
    FlowLink {
        from: "notifications_list",
        name: "sync",
        to: "notifications_list",
        parameters: &[("since", "$response.body#/sync_token")],
        description: SYNC,
    },
    FlowLink {
        from: "alerts_list",
        name: "next_page",
        to: "alerts_list",
        parameters: &[("cursor", "$response.body#/next_cursor")],
        description: NEXT_PAGE,
    },
    FlowLink {
        from: "devices_register",
        name: "update",
        to: "device_update",
        parameters: &[("device_id", "$response.body#/id")],
        description: "Replace the device's token when the provider issues a new one.",
    },
    FlowLink {
        from: "devices_register",
        name: "unregister",
        to: "device_unregister",
        parameters: &[("device_id", "$response.body#/id")],
        description: "Stop pushes to this device (on sign-out).",
    },
    FlowLink {
        from: "organisation_staff_create",
        name: "new_setup_code",
        to: "organisation_staff_setup_code_create",
        parameters: &[("account_id", "$response.body#/account/id")],
        description: "A new setup code, when the first one expired or got lost.",
    },
];

/// Adds [`LINKS`] to their responses.
pub struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for (_, op) in operations(item) {
                let Some(id) = op.operation_id.clone() else {
                    continue;
                };
                let successes = op
                    .responses
                    .responses
                    .iter_mut()
                    .filter(|(status, _)| status.starts_with('2'));
                for (_, response) in successes {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    for link in LINKS.iter().filter(|l| l.from == id) {
                        let mut built = LinkBuilder::new()
                            .operation_id(link.to)
                            .description(link.description);
                        for (name, expression) in link.parameters {
                            built = built.parameter(*name, *expression);
                        }
                        response
                            .links
                            .insert(link.name.to_owned(), built.build().into());
                    }
                }
            }
        }
    }
}
