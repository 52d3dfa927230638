/**
 * From a decision, and for REQUIRE_REVIEW the resolved review, to an `Approval` or a
 * refusal. Pure (no I/O but hashing); a port of the Python client's `_approval`.
 *
 * The digest check binds what the client executes to what the server recorded:
 *
 * - `action_digest` is over the request as reviewers saw it (redacted paths masked). The
 *   client masks its own params the same way and must get the same digest: the review is
 *   about exactly this request.
 * - `final_digest` is over what was approved: the reviewer's edited params for MODIFIED (as
 *   they wrote them, masks included), else the request. The client hashes the params it is
 *   about to execute, with the values it restored at redacted paths masked again, and must
 *   get the same digest: nothing is executed that a reviewer did not approve.
 *
 * Principal and resource are taken as the server echoed them in the review's request
 * (masked where the policy says), since those are what the server hashed.
 */

import type { JsonObject } from "@bufbuild/protobuf";
import { actionDigests, type DigestPrincipal, type DigestResource } from "./canonical.js";
import { Outcome, type Decision } from "./gen/signoff/v1/common_pb.js";
import { ReviewState, Verdict, type Review } from "./gen/signoff/v1/review_pb.js";
import {
  Cancelled,
  Denied,
  DigestMismatch,
  Expired,
  NotApproved,
  Rejected,
  SignoffError,
} from "./errors.js";
import { mask, remask, unmask } from "./masking.js";

/** What `require()` returns when the action may run: execute exactly `params`. */
export interface Approval {
  /** The params to execute: a reviewer's edits where edited, the real values where redacted. */
  readonly params: JsonObject;
  readonly decision: Decision;
  /** The resolved review; undefined when the policy allowed the action without review. */
  readonly review: Review | undefined;
  /** True when a review (a person, or its expiry) let the action through. */
  readonly reviewed: boolean;
  /** Reviewers whose approval (or edit) counted, in order; [] without review. */
  readonly approvers: readonly string[];
}

const KNOWN_OUTCOMES = new Set<number>([Outcome.AUTO_ALLOW, Outcome.REQUIRE_REVIEW, Outcome.DENY]);
const KNOWN_STATES = new Set<number>([
  ReviewState.PENDING,
  ReviewState.APPROVED,
  ReviewState.MODIFIED,
  ReviewState.REJECTED,
  ReviewState.EXPIRED,
  ReviewState.CANCELLED,
]);
const MAY_RUN = new Set<ReviewState>([ReviewState.APPROVED, ReviewState.MODIFIED, ReviewState.EXPIRED]);

/** Throw unless the decision's outcome is one this client knows (never guess "allowed"). */
export function checkOutcome(decision: Decision): Decision {
  if (!KNOWN_OUTCOMES.has(decision.outcome)) {
    throw new SignoffError(
      `the server sent outcome ${decision.outcome}, unknown to this client; upgrade @signoff/client`,
    );
  }
  return decision;
}

/** True once a review is resolved; throws on a state this client does not know. */
export function isFinal(review: Review): boolean {
  if (!KNOWN_STATES.has(review.state)) {
    // An unknown state is neither "pending" (wait forever) nor "approved" (act).
    throw new SignoffError(
      `the server sent review state ${review.state}, unknown to this client; upgrade @signoff/client`,
    );
  }
  return review.state !== ReviewState.PENDING;
}

/** Return the Approval of an AUTO_ALLOW, throw Denied on DENY; undefined means wait. */
export function fromDecision(decision: Decision, params: JsonObject | undefined): Approval | undefined {
  checkOutcome(decision);
  if (decision.outcome === Outcome.AUTO_ALLOW) {
    return approval(structuredCopy(params ?? {}), decision, undefined);
  }
  if (decision.outcome === Outcome.DENY) throw new Denied(decision);
  return undefined;
}

/** Return the Approval a resolved review gives, digest-checked; throw why not otherwise. */
export async function fromReview(
  action: string,
  params: JsonObject | undefined,
  decision: Decision,
  review: Review,
): Promise<Approval> {
  isFinal(review);
  const state = review.state;
  if (MAY_RUN.has(state) && review.outcome === Outcome.AUTO_ALLOW) {
    const [execute, approved] = paramsOf(review, params);
    const [principal, resource] = echoed(review);
    const requested = await actionDigests(action, mask(params, review.redactedPaths), principal, resource);
    check(review, "action_digest", review.actionDigest, requested);
    check(review, "final_digest", review.finalDigest, await actionDigests(action, approved, principal, resource));
    return approval(execute, decision, review);
  }
  if (state === ReviewState.REJECTED) throw new Rejected(review);
  if (state === ReviewState.EXPIRED) throw new Expired(review);
  if (state === ReviewState.CANCELLED) throw new Cancelled(review);
  // PENDING, or a final state whose outcome does not allow acting: never guess.
  const outcome = review.outcome ? Outcome[review.outcome] : "unset";
  throw new NotApproved(
    `review ${review.reviewId} is ${ReviewState[state]} (outcome ${outcome}); not acting`,
  );
}

/** Return [the params to execute, the same as the approver saw them]. */
function paramsOf(review: Review, params: JsonObject | undefined): [JsonObject, JsonObject] {
  if (review.state === ReviewState.MODIFIED) {
    if (review.finalParams === undefined) {
      throw new NotApproved(`review ${review.reviewId} is MODIFIED but has no final_params`);
    }
    const execute = unmask(review.finalParams, params, review.redactedPaths);
    // Hash what will run with the restored values masked again: that is what the reviewer
    // approved. A value the reviewer typed at a redacted path is theirs and is hashed as
    // written (masking every redacted path would refuse it).
    return [execute, remask(execute, review.finalParams, review.redactedPaths)];
  }
  return [structuredCopy(params ?? {}), mask(params, review.redactedPaths)];
}

function check(review: Review, field: "action_digest" | "final_digest", expected: string, actual: string[]): void {
  // An empty expected digest (an old server, a review not yet approved) fails too: the
  // check is the point, and skipping it silently would let anything through. `actual` holds
  // today's digest and, for an action with an integral number above 2^53, the pre-0.2.0 one
  // that a review opened by an older server carries.
  if (!actual.includes(expected)) throw new DigestMismatch(review, { field, expected, actual: actual[0]! });
}

function echoed(review: Review): [DigestPrincipal, DigestResource] {
  const p = review.request?.principal;
  const r = review.request?.resource;
  // Digests cover the principal as the agent sent it. The server keeps that under
  // `claimed` and puts the facts it vouches for at the top level.
  const sent = p?.claimed ?? p;
  return [
    {
      id: p?.id ?? "",
      kind: sent?.kind ?? "",
      roles: sent?.roles ?? [],
      tags: sent?.tags ?? [],
      onBehalfOf: sent?.onBehalfOf ?? "",
      attributes: sent?.attributes ?? {},
    },
    { kind: r?.kind ?? "", id: r?.id ?? "", attributes: r?.attributes ?? {} },
  ];
}

function approval(params: JsonObject, decision: Decision, review: Review | undefined): Approval {
  return Object.freeze({
    params,
    decision,
    review,
    reviewed: review !== undefined,
    approvers: Object.freeze(review ? approversOf(review) : []),
  });
}

function approversOf(review: Review): string[] {
  // As the server counts: an edit changes what is approved, so approvals before the last
  // edit were of something else.
  const acts = review.acts;
  let from = 0;
  acts.forEach((a, i) => {
    if (a.verdict === Verdict.MODIFY) from = i;
  });
  return acts
    .slice(from)
    .filter((a) => a.verdict === Verdict.APPROVE || a.verdict === Verdict.MODIFY)
    .map((a) => a.reviewer);
}

function structuredCopy(value: JsonObject): JsonObject {
  return structuredClone(value);
}
