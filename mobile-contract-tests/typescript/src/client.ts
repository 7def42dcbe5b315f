// An app's Kring client, typed from openapi/openapi.json by openapi-typescript.
// CI type-checks it against a freshly generated copy of the types, so a change
// to the spec that would break apps written this way fails the build.

import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../generated/kring.js";

export type Post = components["schemas"]["Post"];
export type Problem = components["schemas"]["Problem"];
export type Tokens = components["schemas"]["Tokens"];

/** Where the app keeps its session (the phone's secure storage). */
export interface SessionStore {
  load(): Tokens | undefined;
  save(tokens: Tokens): void;
}

export function kringClient(baseUrl: string, session: SessionStore) {
  const client = createClient<paths>({ baseUrl });

  // Send the access token; on 401 `token_expired`, refresh once and retry.
  const auth: Middleware = {
    async onRequest({ request }) {
      const tokens = session.load();
      if (tokens) request.headers.set("Authorization", `Bearer ${tokens.access_token}`);
      return request;
    },
    async onResponse({ request, response }) {
      if (response.status !== 401) return response;
      const problem = (await response.clone().json()) as Problem;
      const tokens = session.load();
      if (problem.code !== "token_expired" || !tokens) return response;
      const refreshed = await client.POST("/v1/auth/refresh", {
        body: { refresh_token: tokens.refresh_token },
      });
      if (!refreshed.data) return response;
      session.save(refreshed.data);
      const retry = new Request(request, { headers: new Headers(request.headers) });
      retry.headers.set("Authorization", `Bearer ${refreshed.data.access_token}`);
      return fetch(retry);
    },
  };
  client.use(auth);
  return client;
}

export type KringClient = ReturnType<typeof kringClient>;

/** Writes a post; a retry after a lost response reuses the same key. */
export async function writePost(client: KringClient, circleId: string, body: string, key: string) {
  const { data, error } = await client.POST("/v1/circles/{circle_id}/posts", {
    params: { path: { circle_id: circleId }, header: { "Idempotency-Key": key } },
    body: { body },
  });
  if (error) throw new Error(`${error.code}: ${error.detail ?? error.title}`);
  return data;
}

/**
 * Brings the app's copy of a circle's feed up to date. Without `since` it
 * lists the feed newest first; with the last `sync_token` it fetches only
 * what changed (tombstones included). Keep the returned token for next time.
 */
export async function syncFeed(client: KringClient, circleId: string, since?: string) {
  const changed: Post[] = [];
  let cursor = undefined as string | undefined;
  for (;;) {
    const { data, error } = await client.GET("/v1/circles/{circle_id}/posts", {
      params: { path: { circle_id: circleId }, query: { since, cursor, limit: 50 } },
    });
    if (error) throw new Error(`${error.code}: ${error.detail ?? error.title}`);
    changed.push(...data.items);
    if (!data.next_cursor) return { changed, syncToken: data.sync_token };
    cursor = data.next_cursor;
  }
}

/** The "I'm OK" button of a nudge: checks in to every circle. */
export async function imOk(client: KringClient) {
  const { error } = await client.POST("/v1/me/im-ok");
  if (error) throw new Error(error.code);
}
