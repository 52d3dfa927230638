/**
 * `SignoffClient`: the ergonomic layer over the generated services, for Node and browsers.
 *
 *     const signoff = createSignoffClient({ transport, token });
 *     const approval = await signoff.require({ action: "refund.issue", params: { amount: 750 } });
 *     issueRefund(approval.params); // a reviewer's edits included
 *
 * The transport decides the protocol: gRPC from Node (`@signoff/client/node`), Connect from
 * browsers (`@signoff/client/web`), or any Connect `Transport` you build yourself. Mirrors
 * the Python client's `Client`: one overall deadline per call, retries only where safe,
 * typed errors, and `require()` = evaluate, wait for the human, verify the digests.
 */

import { create, type JsonObject } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { fromDecision, fromReview, isFinal, checkOutcome, type Approval } from "./approval.js";
import {
  Code,
  InvalidArgument,
  ResourceExhausted,
  ReviewTimeout,
  SignoffError,
  Unavailable,
  fromError,
} from "./errors.js";
import { AuditService } from "./gen/signoff/v1/audit_pb.js";
import type { Decision } from "./gen/signoff/v1/common_pb.js";
import { DecisionService, type Explanation } from "./gen/signoff/v1/decision_pb.js";
import { PolicyService } from "./gen/signoff/v1/policy_pb.js";
import {
  ReviewOrder,
  ReviewService,
  ReviewState,
  Verdict,
  type ListReviewsResponse,
  type Review,
} from "./gen/signoff/v1/review_pb.js";
import { toActionRequest, checkStruct, type ActionInput } from "./request.js";
import { DEFAULT_POLICY, RETRYABLE, backoffMs, sleep, type RetryPolicy } from "./retry.js";

/** A bearer token, or a function returning the current one (called for every call). */
export type TokenSource = string | (() => string | Promise<string>);

export interface SignoffClientOptions {
  /** How to reach the server: `createGrpcTransport` (Node), `createConnectTransport`, ... */
  transport: Transport;
  /** Sent as `authorization: Bearer <token>` on every call. Omit in dev mode. */
  token?: TokenSource;
  /** Default overall deadline of one call, retries included (ms; default 5000). */
  timeoutMs?: number;
  /** Retries on UNAVAILABLE / DEADLINE_EXCEEDED (default 3). */
  retries?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Cancels the call; the promise then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Overall deadline of this call in ms, retries included (default: the client's). */
  timeoutMs?: number;
}

/** Options of `waitForReview`. */
export interface WaitOptions {
  /** Stops waiting; the promise then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * How long to wait in ms before giving up with `ReviewTimeout` (the review stays pending
   * on the server). Undefined waits until the review resolves: reviews expire on the server.
   */
  timeoutMs?: number;
  /** Called with every state of the review received, the current one first. */
  onUpdate?: (review: Review) => void;
}

/** Options of `require`. */
export interface RequireOptions extends WaitOptions {
  /** Called with the REQUIRE_REVIEW decision just before waiting starts. */
  onReview?: (decision: Decision) => void;
}

/** Options of `screen`. */
export interface ScreenOptions extends CallOptions {
  /** Context paths (`context.mcp.session_id`) each real call sets to its own value. */
  varying?: string[];
}

/** What `screen` found for one action: denied whatever its params, or not (yet) known. */
export interface ScreenResult {
  denied: boolean;
  reason: string;
  /** "rule <name> (<file>:<line>)" when denied. */
  rule: string;
  /** The bundle that answered: the answer holds until it changes. */
  policyVersion: string;
}

export type VerdictLike = Verdict | "approve" | "modify" | "reject";

/** Options of `submitReview`. */
export interface SubmitOptions extends CallOptions {
  /** The review `version` the reviewer saw; the act is refused if it changed since. */
  expectedVersion: bigint | number;
  /** The edited params (MODIFY only). */
  params?: JsonObject;
  comment?: string;
}

/** Filters of `listReviews`. */
export interface ListReviewsOptions extends CallOptions {
  /** Reviewer groups; empty means every group the caller may review. */
  groups?: string[];
  /** States; empty means PENDING only. */
  states?: ReviewState[];
  /** Glob on the action name, e.g. "refund.*". */
  action?: string;
  order?: "oldest" | "newest";
  /** Only reviews created at least this long ago (ms). */
  olderThanMs?: number;
  pageSize?: number;
  pageToken?: string;
}

const DEFAULT_TIMEOUT_MS = 5000;

/** Create a client; see `SignoffClient`. */
export function createSignoffClient(options: SignoffClientOptions): SignoffClient {
  return new SignoffClient(options);
}

/** Return `transport` with `authorization: Bearer <token>` added to every call's headers. */
export function withBearerToken(transport: Transport, token: TokenSource): Transport {
  const headerWith = async (header: HeadersInit | undefined): Promise<Headers> => {
    const out = new Headers(header);
    const value = typeof token === "function" ? await token() : token;
    if (value && !out.has("authorization")) out.set("authorization", `Bearer ${value}`);
    return out;
  };
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      return transport.unary(method, signal, timeoutMs, await headerWith(header), input, contextValues);
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      return transport.stream(method, signal, timeoutMs, await headerWith(header), input, contextValues);
    },
  };
}

/** A Signoff client over any Connect transport. Holds no connection of its own. */
export class SignoffClient {
  /** The generated clients, for anything the helpers do not cover (same token, no retries). */
  readonly decisions: Client<typeof DecisionService>;
  readonly reviews: Client<typeof ReviewService>;
  readonly audit: Client<typeof AuditService>;
  readonly policy: Client<typeof PolicyService>;
  private readonly timeoutMs: number;
  private readonly retryPolicy: RetryPolicy;

  constructor(options: SignoffClientOptions) {
    const transport = options.token ? withBearerToken(options.transport, options.token) : options.transport;
    this.decisions = createClient(DecisionService, transport);
    this.reviews = createClient(ReviewService, transport);
    this.audit = createClient(AuditService, transport);
    this.policy = createClient(PolicyService, transport);
    this.timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, "timeoutMs");
    const retries = options.retries ?? DEFAULT_POLICY.retries;
    if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`retries must be an integer >= 0, got ${retries}`);
    this.retryPolicy = { ...DEFAULT_POLICY, retries };
  }

  // --- decisions ---

  /** Ask whether the action may go ahead; retried safely with the same request_id. */
  async evaluate(input: ActionInput, options: CallOptions = {}): Promise<Decision> {
    const request = toActionRequest(input);
    const decision = await this.call((o) => this.decisions.evaluate(request, o), options);
    return checkOutcome(decision);
  }

  /** Decide several requests in one call; one decision per request, in order. */
  async evaluateBatch(inputs: ActionInput[], options: CallOptions = {}): Promise<Decision[]> {
    if (!Array.isArray(inputs)) throw new InvalidArgument("expected an array", { field: "requests" });
    const requests = inputs.map((input, i) => toActionRequest(input, `requests[${i}]`));
    const response = await this.call((o) => this.decisions.evaluateBatch({ requests }, o), options);
    return response.decisions.map(checkOutcome);
  }

  /** Show how the policies treat an action, rule by rule; nothing is stored. */
  async explain(input: ActionInput, options: CallOptions = {}): Promise<Explanation> {
    const request = toActionRequest(input, "", false);
    return this.call((o) => this.decisions.explain(request, o), options);
  }

  /**
   * Which of `inputs` (without params) the policies deny whatever their params, in order;
   * `varying`: context paths each real call sets to its own value. Nothing is stored.
   */
  async screen(inputs: ActionInput[], options: ScreenOptions = {}): Promise<ScreenResult[]> {
    if (!Array.isArray(inputs)) throw new InvalidArgument("expected an array", { field: "requests" });
    // Screen stores nothing and answers for every params: no idempotency key is sent.
    const requests = inputs.map((input, i) => toActionRequest(input, `requests[${i}]`, false));
    const varying = options.varying ?? [];
    const response = await this.call((o) => this.decisions.screen({ requests, varying }, o), options);
    return response.results.map((r) => ({
      denied: r.denied,
      reason: r.reason,
      rule: r.rule,
      policyVersion: response.policyVersion,
    }));
  }

  /**
   * Evaluate, wait for the review if one is needed, and return what may be executed:
   * `approval.params` (the reviewer's edits where edited), digest-checked.
   *
   * Throws a `NotApproved` subclass whenever the action must not run: `Denied`,
   * `Rejected`, `Expired`, `Cancelled`, `ReviewTimeout` or `DigestMismatch`. `timeoutMs`
   * bounds the whole call; undefined waits until the review resolves.
   */
  async require(input: ActionInput, options: RequireOptions = {}): Promise<Approval> {
    const { signal, timeoutMs, onReview, onUpdate } = options;
    const started = Date.now();
    if (timeoutMs !== undefined) checkTimeout(timeoutMs, "timeoutMs");
    const decision = await this.evaluate(input, {
      signal,
      timeoutMs: timeoutMs === undefined ? undefined : Math.min(this.timeoutMs, timeoutMs),
    });
    const allowed = fromDecision(decision, input.params);
    if (allowed) return allowed;
    onReview?.(decision);
    // At least a sliver: the wait then ends at once with ReviewTimeout, the error the caller
    // expects at the deadline.
    const wait = timeoutMs === undefined ? undefined : Math.max(1, timeoutMs - (Date.now() - started));
    const review = await this.waitForReview(decision.reviewId, { signal, timeoutMs: wait, onUpdate });
    return fromReview(input.action, input.params, decision, review);
  }

  // --- reviews ---

  /** Return a review as it stands now. */
  async getReview(reviewId: string, options: CallOptions = {}): Promise<Review> {
    checkReviewId(reviewId);
    return this.call((o) => this.reviews.getReview({ reviewId }, o), options);
  }

  /**
   * Resolve with the review once it is resolved (any final state: check `state`, or use
   * `require`). Watches the review's stream and reopens it whenever it drops (server
   * restart, network): the server sends the current state first, so no change is missed.
   * Rejects with `ReviewTimeout` after `timeoutMs`, with `signal.reason` when aborted.
   */
  async waitForReview(reviewId: string, options: WaitOptions = {}): Promise<Review> {
    checkReviewId(reviewId);
    const { signal } = options;
    const started = Date.now();
    const deadline =
      options.timeoutMs === undefined ? undefined : started + checkTimeout(options.timeoutMs, "timeoutMs");
    let last: Review | undefined;
    let failures = 0;
    for (;;) {
      signal?.throwIfAborted();
      const remaining = deadline === undefined ? undefined : deadline - Date.now();
      if (remaining !== undefined && remaining <= 0) {
        throw new ReviewTimeout(reviewId, last, Date.now() - started);
      }
      let error: unknown;
      // Our own signal and deadline per stream, both ended when we leave it. (Connect's
      // `timeoutMs` would keep its timer, and so a Node process, alive until the deadline
      // when we stop reading at the final state.)
      const attempt = new AbortController();
      const forward = (): void => attempt.abort(signal?.reason);
      signal?.addEventListener("abort", forward, { once: true });
      let timedOut = false;
      const timer =
        remaining === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              attempt.abort();
            }, remaining);
      try {
        const stream = this.reviews.watchReview({ reviewId }, { signal: attempt.signal });
        for await (const review of stream) {
          failures = 0; // the server was reachable: back off from the start next time
          last = review;
          const final = isFinal(review);
          options.onUpdate?.(review);
          if (final) return review; // leaving the loop cancels the stream
        }
      } catch (err) {
        // Only the transport's errors concern the connection; anything else (an unknown review
        // state, an error thrown by onUpdate) is the caller's to see as it is.
        if (!(err instanceof ConnectError)) throw err;
        error = err;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", forward);
        attempt.abort();
      }
      signal?.throwIfAborted();
      if (timedOut || (deadline !== undefined && Date.now() >= deadline)) {
        throw new ReviewTimeout(reviewId, last, Date.now() - started, error);
      }
      let serverDelay = 0;
      if (error !== undefined) {
        const mapped = peerCancelled(fromError(error), signal);
        // A stream refused with RetryInfo (too many open) is reopened after that delay.
        const limited = mapped instanceof ResourceExhausted && mapped.retryAfterMs !== undefined;
        if (!RETRYABLE.has(mapped.code) && !limited) throw mapped;
        if (limited) serverDelay = (mapped as ResourceExhausted).retryAfterMs ?? 0;
      }
      // A dropped stream, or one that ended without a final state (a server going away
      // cleanly): reopen after a backoff, never past the deadline.
      let delay = Math.max(serverDelay, backoffMs(this.retryPolicy, failures++));
      if (deadline !== undefined) delay = Math.min(delay, Math.max(0, deadline - Date.now()));
      await sleep(delay, signal);
    }
  }

  /** Return one page of the reviews the caller may see (PENDING only by default). */
  async listReviews(options: ListReviewsOptions = {}): Promise<ListReviewsResponse> {
    const order = options.order ?? "oldest";
    if (order !== "oldest" && order !== "newest") {
      throw new RangeError(`order must be "oldest" or "newest", got ${String(order)}`);
    }
    let olderThan;
    if (options.olderThanMs !== undefined) {
      const ms = options.olderThanMs;
      if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgument("expected ms >= 0", { field: "older_than" });
      olderThan = create(DurationSchema, {
        seconds: BigInt(Math.floor(ms / 1000)),
        nanos: Math.round((ms % 1000) * 1e6),
      });
    }
    const request = {
      reviewerGroups: options.groups ?? [],
      states: options.states ?? [],
      action: options.action ?? "",
      order: order === "oldest" ? ReviewOrder.OLDEST_FIRST : ReviewOrder.NEWEST_FIRST,
      olderThan,
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    };
    return this.call((o) => this.reviews.listReviews(request, o), options);
  }

  /** Approve, modify (with `params`) or reject, as a reviewer; resolves with the new review. */
  async submitReview(reviewId: string, verdict: VerdictLike, options: SubmitOptions): Promise<Review> {
    checkReviewId(reviewId);
    const expected = options.expectedVersion;
    if (typeof expected !== "bigint" && !Number.isSafeInteger(expected)) {
      throw new InvalidArgument("expected an integer (the review version you saw)", { field: "expected_version" });
    }
    const comment = options.comment ?? "";
    if (typeof comment !== "string") throw new InvalidArgument("expected a string", { field: "comment" });
    const request = {
      reviewId,
      verdict: parseVerdict(verdict),
      expectedVersion: BigInt(expected),
      // Unset unless given: the server refuses params on anything but MODIFY.
      params: options.params === undefined ? undefined : checkStruct(options.params, "params"),
      comment,
    };
    return this.call((o) => this.reviews.submitReview(request, o), options);
  }

  /** Approve `review` as it was seen (its `version`). */
  approve(review: Review, options: CallOptions & { comment?: string } = {}): Promise<Review> {
    return this.submitReview(review.reviewId, Verdict.APPROVE, { ...options, expectedVersion: review.version });
  }

  /** Approve `review` with edited params: the agent executes `params`. */
  modify(review: Review, params: JsonObject, options: CallOptions & { comment?: string } = {}): Promise<Review> {
    return this.submitReview(review.reviewId, Verdict.MODIFY, { ...options, params, expectedVersion: review.version });
  }

  /** Reject `review`. */
  reject(review: Review, options: CallOptions & { comment?: string } = {}): Promise<Review> {
    return this.submitReview(review.reviewId, Verdict.REJECT, { ...options, expectedVersion: review.version });
  }

  /** Withdraw the caller's own pending review; resolves with it CANCELLED. */
  async cancelReview(reviewId: string, reason = "", options: CallOptions = {}): Promise<Review> {
    checkReviewId(reviewId);
    if (typeof reason !== "string") throw new InvalidArgument("expected a string", { field: "reason" });
    return this.call((o) => this.reviews.cancelReview({ reviewId, reason }, o), options);
  }

  // --- retries ---

  /** Run `rpc` with retries within one overall deadline; map failures to typed errors. */
  private async call<T>(
    rpc: (o: { signal?: AbortSignal; timeoutMs: number }) => Promise<T>,
    options: CallOptions,
  ): Promise<T> {
    const { signal } = options;
    const budget = options.timeoutMs === undefined ? this.timeoutMs : checkTimeout(options.timeoutMs, "timeoutMs");
    const started = Date.now();
    const deadline = started + budget;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const remaining = Math.max(1, Math.ceil(deadline - Date.now()));
      try {
        return await rpc({ signal, timeoutMs: remaining });
      } catch (err) {
        signal?.throwIfAborted();
        const error = peerCancelled(fromError(err), signal);
        const delay = this.retryAfter(error, attempt, deadline);
        if (delay === undefined) {
          if (attempt > 0) {
            error.message += ` (gave up after ${attempt + 1} attempts in ${((Date.now() - started) / 1000).toFixed(2)}s)`;
          }
          throw error;
        }
        await sleep(delay, signal);
      }
    }
  }

  private retryAfter(error: SignoffError, attempt: number, deadline: number): number | undefined {
    if (attempt >= this.retryPolicy.retries) return undefined;
    if (error instanceof ResourceExhausted && error.retryAfterMs !== undefined) {
      // The server said when (a rate limit, all slots busy): wait that, plus up to 10% so
      // that callers refused together do not return together, if it fits the deadline.
      const left = deadline - Date.now();
      if (error.retryAfterMs >= left) {
        error.message += ` (the server asked to retry in ${(error.retryAfterMs / 1000).toFixed(3)}s; only ${(left / 1000).toFixed(3)}s of the timeout were left)`;
        return undefined;
      }
      const jittered = error.retryAfterMs * (1 + 0.1 * Math.random());
      return jittered < left ? jittered : error.retryAfterMs;
    }
    if (!RETRYABLE.has(error.code)) return undefined;
    const delay = backoffMs(this.retryPolicy, attempt);
    // Waiting past the deadline only to fail with DEADLINE_EXCEEDED would hide the real
    // cause; give up now and report the error we have.
    return delay >= deadline - Date.now() ? undefined : delay;
  }
}

/**
 * A call cancelled though the caller did not abort it was reset by the other side: an HTTP/2
 * stream the server closed with CANCEL as it shut down, which Connect reports as `Canceled`
 * where gRPC's own clients say UNAVAILABLE. Nothing was decided; it is an `Unavailable`,
 * retried like one. (Connect's own deadline gives DeadlineExceeded, not Canceled.)
 */
function peerCancelled(error: SignoffError, signal: AbortSignal | undefined): SignoffError {
  if (error.code !== Code.Canceled || signal?.aborted) return error;
  return new Unavailable(`the server ended the call: ${error.message}`, { cause: error.cause });
}

function checkTimeout(ms: number, name: string): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${String(ms)}`);
  }
  return ms;
}

function checkReviewId(value: unknown): asserts value is string {
  if (typeof value !== "string" || !value) {
    throw new InvalidArgument("expected a non-empty string", { field: "review_id" });
  }
}

function parseVerdict(value: VerdictLike): Verdict {
  if (value === Verdict.APPROVE || value === Verdict.MODIFY || value === Verdict.REJECT) return value;
  switch (typeof value === "string" ? value.toLowerCase() : value) {
    case "approve":
      return Verdict.APPROVE;
    case "modify":
      return Verdict.MODIFY;
    case "reject":
      return Verdict.REJECT;
    default:
      throw new InvalidArgument(`verdict must be approve, modify or reject, got ${String(value)}`, {
        field: "verdict",
      });
  }
}
