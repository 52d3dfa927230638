// The client over gRPC (HTTP/2) from Node, against a real `signoff serve`.

import { describe, expect, test } from "vitest";
import { Code, DigestMismatch, ReviewState, fromReview } from "../src/index.js";
import { createSignoffNodeClient, type SignoffNodeClient } from "../src/node.js";
import { WAIT_MS, clientFlows, refund, request, reviewOpened, useServer } from "./flows.js";

const h = useServer(
  (server, token) => createSignoffNodeClient({ baseUrl: server.grpcUrl, token }),
  (client) => (client as SignoffNodeClient).close(),
);

clientFlows(h);

describe("digest checks", () => {
  test("params that differ from what was reviewed or approved are refused", async () => {
    const { onReview, opened } = reviewOpened();
    const approved = h.agent.require(request(760), { onReview, timeoutMs: WAIT_MS });
    const decision = await opened;
    const review = await h.reviewer.getReview(decision.reviewId);
    await h.reviewer.modify(review, { ...review.request!.action!.params!, amount: 700 });
    const approval = await approved;
    const resolved = approval.review!;
    expect(resolved.state).toBe(ReviewState.MODIFIED);

    // The real review checks out as it is...
    const again = await fromReview("refund.issue", refund(760), decision, resolved);
    expect(again.params).toEqual(refund(700));

    // Digests cover the principal as the agent sent it (the server keeps that under
    // `claimed`), not the facts an authenticated server puts at the top level.
    const p = resolved.request!.principal!;
    expect(p.claimed?.kind).toBe("agent");
    const vouched = { ...resolved, request: { ...resolved.request!, principal: { ...p, kind: "", tags: ["vip"] } } };
    expect((await fromReview("refund.issue", refund(760), decision, vouched)).params).toEqual(refund(700));

    // ...but not for other params than those requested (action_digest),
    const other = await fromReview("refund.issue", refund(761), decision, resolved).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(DigestMismatch);
    expect((other as DigestMismatch).field).toBe("action_digest");
    expect((other as DigestMismatch).code).toBe(Code.DataLoss);

    // ...nor for edits other than those the server recorded as approved (final_digest),
    const tampered = { ...resolved, finalParams: { ...resolved.finalParams!, amount: 7000 } };
    const edited = await fromReview("refund.issue", refund(760), decision, tampered).catch((e: unknown) => e);
    expect(edited).toBeInstanceOf(DigestMismatch);
    expect((edited as DigestMismatch).field).toBe("final_digest");
    expect((edited as DigestMismatch).expected).toBe(resolved.finalDigest);

    // ...nor when the server sent no digest at all.
    const blank = { ...resolved, finalDigest: "" };
    await expect(fromReview("refund.issue", refund(760), decision, blank)).rejects.toBeInstanceOf(DigestMismatch);
  });
});

describe("connection", () => {
  test("an unreachable server is Unavailable, after the retries, within the deadline", async () => {
    // Port 1: nothing listens there, so every attempt is refused at once.
    const client = createSignoffNodeClient({ baseUrl: "http://127.0.0.1:1", token: "x", timeoutMs: 2_000 });
    try {
      const started = Date.now();
      const err = await client.evaluate(request(10)).catch((e: unknown) => e);
      expect((err as { code?: Code }).code).toBe(Code.Unavailable);
      expect((err as Error).message).toMatch(/gave up after \d attempts/);
      expect(Date.now() - started).toBeLessThan(2_500);
    } finally {
      client.close();
    }
  });
});
