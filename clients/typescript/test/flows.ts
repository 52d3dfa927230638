/**
 * The client's behaviour against a real server, written once and run over each transport
 * (gRPC from Node, Connect from fetch, Connect from Node): each test file starts its own
 * server and says how to build a client for a token.
 */

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  Cancelled,
  Code,
  Denied,
  InvalidArgument,
  MASK,
  NotApproved,
  Outcome,
  PermissionDenied,
  Rejected,
  ReviewState,
  ReviewTimeout,
  SignoffError,
  Unauthenticated,
  type Decision,
  type SignoffClient,
} from "../src/index.js";
import { IDENTITIES, startServer, type Server } from "./server.js";

export const AGENT = IDENTITIES.agent.identity;
export const REVIEWER = IDENTITIES.reviewer.identity;
export const CARD = "4111 1111 1111 1111";
/** Bound on every wait for a human in these tests: a failure fails, never hangs. */
export const WAIT_MS = 10_000;

export function refund(amount: number, extra: JsonObject = {}): JsonObject {
  return { account: "acct_42", amount, currency: "EUR", card_number: CARD, ...extra };
}

export function request(amount: number, requestId?: string) {
  return {
    action: "refund.issue",
    params: refund(amount),
    principal: { id: AGENT, kind: "agent" },
    resource: { kind: "account", id: "acct_42" },
    context: { ticket: "T-1" },
    justification: "charged twice",
    ...(requestId ? { requestId } : {}),
  };
}

/** A promise of the REQUIRE_REVIEW decision `require()` reports through `onReview`. */
export function reviewOpened(): { onReview: (d: Decision) => void; opened: Promise<Decision> } {
  let onReview!: (d: Decision) => void;
  const opened = new Promise<Decision>((resolve) => {
    onReview = resolve;
  });
  return { onReview, opened };
}

export interface Harness {
  server: Server;
  agent: SignoffClient;
  reviewer: SignoffClient;
  client(token: string): SignoffClient;
}

/**
 * Start a server for the calling file, and stop it (and close every client) after it.
 * `make` builds a client for a token; `close` releases one.
 */
export function useServer(
  make: (server: Server, token: string) => SignoffClient,
  close: (client: SignoffClient) => void = () => {},
): Harness {
  const made: SignoffClient[] = [];
  const h = {} as Harness;
  beforeAll(async () => {
    h.server = await startServer();
    h.client = (token: string) => {
      const c = make(h.server, token);
      made.push(c);
      return c;
    };
    h.agent = h.client(h.server.tokens.agent);
    h.reviewer = h.client(h.server.tokens.reviewer);
  });
  afterAll(async () => {
    made.forEach(close);
    await h.server?.stop();
  });
  return h;
}

/** The flows every transport must get right. */
export function clientFlows(h: Harness): void {
  describe("evaluate", () => {
    test("AUTO_ALLOW, DENY and REQUIRE_REVIEW on the example policies", async () => {
      const small = await h.agent.evaluate(request(120));
      expect(small.outcome).toBe(Outcome.AUTO_ALLOW);
      expect(small.reason).toBe("Small refund within policy.");
      expect(small.reviewId).toBe("");

      const huge = await h.agent.evaluate(request(25_000));
      expect(huge.outcome).toBe(Outcome.DENY);
      expect(huge.reason).toBe("Refunds above 10,000 are never issued by an agent.");

      const large = await h.agent.evaluate(request(750));
      expect(large.outcome).toBe(Outcome.REQUIRE_REVIEW);
      expect(large.reviewerGroup).toBe("finance");
      expect(large.reviewId).not.toBe("");
      expect(large.matchedRules.map((r) => r.rule)).toContain("large-refund");
      expect(large.policyVersion).toMatch(/^sha256:/);
    });

    test("the same request_id replays the same decision", async () => {
      const id = `replay-${crypto.randomUUID()}`;
      const first = await h.agent.evaluate(request(750, id));
      const again = await h.agent.evaluate(request(750, id));
      expect(again.decisionId).toBe(first.decisionId);
      expect(again.reviewId).toBe(first.reviewId);
      expect(again.replayed).toBe(true);
    });

    test("evaluateBatch answers in order; explain stores nothing", async () => {
      const [a, b] = await h.agent.evaluateBatch([request(10), request(20_000)]);
      expect([a?.outcome, b?.outcome]).toEqual([Outcome.AUTO_ALLOW, Outcome.DENY]);
      const explained = await h.agent.explain(request(750));
      expect(explained.decision?.outcome).toBe(Outcome.REQUIRE_REVIEW);
      expect(explained.decision?.decisionId).toBe("");
      expect(explained.decidedBy).toContain("large-refund");
    });

    test("screen names the actions denied whatever their params", async () => {
      const hinted = (destructive: boolean) => ({
        mcp: { upstream: "payments", tool: "x", annotations: { destructiveHint: destructive } },
      });
      const resource = { kind: "mcp_server", id: "payments" };
      const [wipe, refund] = await h.agent.screen(
        [
          { action: "mcp.payments.delete_customer", resource, context: hinted(true) },
          { action: "mcp.payments.refund", resource, context: hinted(false) },
        ],
        { varying: ["context.mcp.session_id"] },
      );
      expect(wipe?.denied).toBe(true);
      expect(wipe?.rule).toMatch(/^rule destructive-tool \(mcp\.yaml:\d+\)/);
      // refund-over-limit denies some amounts only: not denied whatever the params.
      expect(refund?.denied).toBe(false);
      expect(wipe?.policyVersion).toMatch(/^sha256:/);
      await expect(h.agent.screen([{ action: "a", params: { amount: 1 } }])).rejects.toMatchObject({
        field: "requests[0].action.params",
      });
    });
  });

  describe("require", () => {
    test("a reviewer's edits are what the agent executes, digests verified", async () => {
      const { onReview, opened } = reviewOpened();
      const approved = h.agent.require(request(750), { onReview, timeoutMs: WAIT_MS });
      const decision = await opened;

      // The reviewer sees the card number masked, edits the amount, leaves the mask.
      const review = await h.reviewer.getReview(decision.reviewId);
      expect(review.state).toBe(ReviewState.PENDING);
      const seen = review.request!.action!.params!;
      expect(seen.card_number).toBe(MASK);
      expect(review.redactedPaths).toEqual(["action.params.card_number"]);
      const modified = await h.reviewer.modify(review, { ...seen, amount: 500 }, { comment: "half now" });
      expect(modified.state).toBe(ReviewState.MODIFIED);

      const approval = await approved;
      // The edited amount, and the real card number back where the reviewer saw the mask.
      expect(approval.params).toEqual(refund(500));
      expect(approval.reviewed).toBe(true);
      expect(approval.approvers).toEqual([REVIEWER]);
      expect(approval.review?.state).toBe(ReviewState.MODIFIED);
      expect(approval.review?.finalDigest).toMatch(/^[0-9a-f]{64}$/);
      expect(approval.review?.finalDigest).not.toBe(approval.review?.actionDigest);
      expect(approval.decision.reviewId).toBe(decision.reviewId);
    });

    test("approved as requested: the agent's own params, digests verified", async () => {
      const { onReview, opened } = reviewOpened();
      const approved = h.agent.require(request(800), { onReview, timeoutMs: WAIT_MS });
      await h.reviewer.approve(await h.reviewer.getReview((await opened).reviewId));
      const approval = await approved;
      expect(approval.params).toEqual(refund(800));
      expect(approval.review?.finalDigest).toBe(approval.review?.actionDigest);
    });

    test("allowed at once without a review; denied throws Denied", async () => {
      const approval = await h.agent.require(request(42));
      expect(approval.params).toEqual(refund(42));
      expect(approval.reviewed).toBe(false);
      expect(approval.approvers).toEqual([]);

      const denied = await h.agent.require(request(50_000)).catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(Denied);
      expect(denied).toBeInstanceOf(NotApproved);
      expect((denied as Denied).decision.outcome).toBe(Outcome.DENY);
    });

    test("a rejection throws Rejected with the reviewer's comment", async () => {
      const { onReview, opened } = reviewOpened();
      const waiting = h.agent.require(request(900), { onReview, timeoutMs: WAIT_MS }).catch((e: unknown) => e);
      await h.reviewer.reject(await h.reviewer.getReview((await opened).reviewId), { comment: "duplicate" });
      const err = await waiting;
      expect(err).toBeInstanceOf(Rejected);
      expect((err as Rejected).reviewer).toBe(REVIEWER);
      expect((err as Rejected).comment).toBe("duplicate");
    });

    test("the agent cancelling its review ends the wait with Cancelled", async () => {
      const { onReview, opened } = reviewOpened();
      const waiting = h.agent.require(request(950), { onReview, timeoutMs: WAIT_MS }).catch((e: unknown) => e);
      const cancelled = await h.agent.cancelReview((await opened).reviewId, "customer withdrew");
      expect(cancelled.state).toBe(ReviewState.CANCELLED);
      const err = await waiting;
      expect(err).toBeInstanceOf(Cancelled);
      expect((err as Cancelled).message).toContain("customer withdrew");
    });

    test("ReviewTimeout leaves the review open; the same request_id resumes it", async () => {
      const requestId = `resume-${crypto.randomUUID()}`;
      // Long enough for the evaluate call on a slow machine; the wait then times out.
      const first = await h.agent.require(request(990, requestId), { timeoutMs: 1_000 }).catch((e: unknown) => e);
      expect(first).toBeInstanceOf(ReviewTimeout);
      const timeout = first as ReviewTimeout;
      expect(timeout.code).toBe(Code.DeadlineExceeded);
      expect(timeout.review?.state).toBe(ReviewState.PENDING);

      const { onReview, opened } = reviewOpened();
      const resumed = h.agent.require(request(990, requestId), { onReview, timeoutMs: WAIT_MS });
      const decision = await opened;
      expect(decision.reviewId).toBe(timeout.reviewId);
      expect(decision.replayed).toBe(true);
      await h.reviewer.approve(await h.reviewer.getReview(decision.reviewId));
      expect((await resumed).review?.reviewId).toBe(timeout.reviewId);
    });
  });

  describe("waitForReview", () => {
    test("stops at once when its AbortSignal aborts; the review stays pending", async () => {
      const { reviewId } = await h.agent.evaluate(request(1_000));
      const controller = new AbortController();
      const states: ReviewState[] = [];
      const started = Date.now();
      const err = await h.agent
        .waitForReview(reviewId, {
          signal: controller.signal,
          // Abort once the stream is open and has delivered the current state.
          onUpdate: (r) => {
            states.push(r.state);
            controller.abort();
          },
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DOMException);
      expect((err as DOMException).name).toBe("AbortError");
      expect(states).toEqual([ReviewState.PENDING]);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect((await h.agent.getReview(reviewId)).state).toBe(ReviewState.PENDING);

      // An already aborted signal never calls the server; the reason is the caller's own.
      const reason = new Error("shutting down");
      await expect(h.agent.waitForReview(reviewId, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    });

    test("resolves with the final review, after every update", async () => {
      const { reviewId } = await h.agent.evaluate(request(1_100));
      const updates: ReviewState[] = [];
      let approve!: () => void;
      const pending = new Promise<void>((resolve) => {
        approve = resolve;
      });
      const waited = h.agent.waitForReview(reviewId, {
        timeoutMs: WAIT_MS,
        onUpdate: (r) => {
          updates.push(r.state);
          if (r.state === ReviewState.PENDING) approve();
        },
      });
      await pending;
      await h.reviewer.approve(await h.reviewer.getReview(reviewId));
      const review = await waited;
      expect(review.state).toBe(ReviewState.APPROVED);
      expect(updates.at(0)).toBe(ReviewState.PENDING);
      expect(updates.at(-1)).toBe(ReviewState.APPROVED);
    });
  });

  describe("errors", () => {
    test("a wrong or missing token is Unauthenticated", async () => {
      for (const client of [h.client("not-a-token"), h.client("")]) {
        const err = await client.evaluate(request(10)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(Unauthenticated);
        expect(err).toBeInstanceOf(SignoffError);
        expect((err as Unauthenticated).code).toBe(Code.Unauthenticated);
      }
    });

    test("the server's INVALID_ARGUMENT names the field", async () => {
      const err = await h.agent.evaluate({ ...request(10), action: "" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgument);
      expect((err as InvalidArgument).field).toBe("action.name");
      expect((err as InvalidArgument).message).toMatch(/^action\.name: /);
      expect((err as InvalidArgument).code).toBe(Code.InvalidArgument);
    });

    test("values JSON cannot carry are refused before sending, naming the key", async () => {
      const cases: [JsonObject, string][] = [
        [{ amount: NaN }, "action.params.amount"],
        [{ nested: { list: [1, Infinity] } }, "action.params.nested.list[1]"],
        [{ "odd key": { when: new Date(0) as unknown as string } }, 'action.params["odd key"].when'],
      ];
      for (const [params, field] of cases) {
        const err = await h.agent.evaluate({ ...request(10), params }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidArgument);
        expect((err as InvalidArgument).field).toBe(field);
      }
    });

    test("an agent may not review: PermissionDenied", async () => {
      const { reviewId } = await h.agent.evaluate(request(1_200));
      const review = await h.agent.getReview(reviewId);
      const err = await h.agent.approve(review).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermissionDenied);
      expect(err).not.toBeInstanceOf(NotApproved);
    });

    test("an unknown review is NotFound", async () => {
      const err = await h.reviewer.getReview("01900000-0000-7000-8000-000000000000").catch((e: unknown) => e);
      expect((err as SignoffError).code).toBe(Code.NotFound);
    });
  });

  describe("listReviews", () => {
    test("a reviewer lists the pending reviews of their groups", async () => {
      const { reviewId } = await h.agent.evaluate(request(1_300));
      const page = await h.reviewer.listReviews({ groups: ["finance"], action: "refund.*", order: "newest" });
      expect(page.reviews.map((r) => r.reviewId)).toContain(reviewId);
      expect(page.reviews.every((r) => r.state === ReviewState.PENDING)).toBe(true);
    });
  });
}
