/**
 * Every error the client throws on purpose, and the one mapping from status codes.
 *
 * Catch `SignoffError` for anything the service (or the client on its behalf) refused; each
 * subclass names one status code (`code`, Connect's `Code`, the same numbers as gRPC). The
 * original `ConnectError`, when there is one, is the error's `cause`. Mirrors the Python
 * client's `signoff_client.errors`.
 */

import { fromBinary } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Decision } from "./gen/signoff/v1/common_pb.js";
import type { Review } from "./gen/signoff/v1/review_pb.js";

export { Code };

/** Base of every client error; `code` is the status code, `message` the server's words. */
export class SignoffError extends Error {
  static readonly defaultCode: Code = Code.Unknown;
  readonly code: Code;

  constructor(message: string, options?: { code?: Code; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options?.code ?? (new.target as typeof SignoffError).defaultCode;
  }
}

// The server writes INVALID_ARGUMENT messages as "<field>: <message>", e.g.
// "action.name: is required" or "requests[2].action.params: 312 KiB exceeds ...".
const FIELD_RE = /^([A-Za-z_][\w.[\]'"-]*): /;

/** A request field is malformed; `field` is its path, e.g. `action.name` ("" if unknown). */
export class InvalidArgument extends SignoffError {
  static override readonly defaultCode: Code = Code.InvalidArgument;
  readonly field: string;

  constructor(message: string, options?: { field?: string; code?: Code; cause?: unknown }) {
    let field = options?.field;
    if (field === undefined) {
      field = FIELD_RE.exec(message)?.[1] ?? "";
    } else if (field && !message.startsWith(`${field}: `)) {
      message = `${field}: ${message}`;
    }
    super(message, options);
    this.field = field;
  }
}

/** The named object (a review, a decision) does not exist. */
export class NotFound extends SignoffError {
  static override readonly defaultCode: Code = Code.NotFound;
}

/** A request_id was reused for a different request. */
export class AlreadyExists extends SignoffError {
  static override readonly defaultCode: Code = Code.AlreadyExists;
}

/** The caller is known but may not do this. */
export class PermissionDenied extends SignoffError {
  static override readonly defaultCode: Code = Code.PermissionDenied;
}

/** The token is missing, malformed or not accepted. */
export class Unauthenticated extends SignoffError {
  static override readonly defaultCode: Code = Code.Unauthenticated;
}

/** The object is not in a state that allows this (a resolved review, a stale version). */
export class FailedPrecondition extends SignoffError {
  static override readonly defaultCode: Code = Code.FailedPrecondition;
}

/** The server could not be reached or could not store; nothing was decided. */
export class Unavailable extends SignoffError {
  static override readonly defaultCode: Code = Code.Unavailable;
}

/** The call's overall deadline passed before an answer arrived. */
export class DeadlineExceeded extends SignoffError {
  static override readonly defaultCode: Code = Code.DeadlineExceeded;
}

/**
 * A server limit was hit (request size, batch size, rate, concurrent calls).
 *
 * `retryAfterMs` is the wait the server asked for (its google.rpc.RetryInfo) when a retry
 * after that long may succeed, as after a rate limit; undefined when retrying cannot help,
 * as for a request that is too large. The client waits and retries by itself when the wait
 * fits the call's timeout; this error means it did not.
 */
export class ResourceExhausted extends SignoffError {
  static override readonly defaultCode: Code = Code.ResourceExhausted;
  retryAfterMs?: number;
}

// --- require(): the action must not run ---------------------------------------------------
//
// Not transport failures: every call succeeded and the answer is "no" (or "not yet"). None
// is in BY_CODE, so no status the server sends can be mistaken for one of them.

/** Base of every reason `require()` refuses to let the action run. */
export class NotApproved extends SignoffError {
  static override readonly defaultCode: Code = Code.PermissionDenied;
}

/** The policy denied the action outright; `decision` says which rule and why. */
export class Denied extends NotApproved {
  readonly decision: Decision;

  constructor(decision: Decision) {
    super(`denied by policy: ${decision.reason}`);
    this.decision = decision;
  }
}

/** A reviewer rejected the action; `comment` is theirs, `review` the resolved review. */
export class Rejected extends NotApproved {
  readonly review: Review;
  readonly reviewer: string;
  readonly comment: string;

  constructor(review: Review) {
    const act = review.acts.at(-1);
    const reviewer = act?.reviewer ?? "";
    const comment = act?.comment ?? "";
    super(`review ${review.reviewId} rejected by ${reviewer || "?"}${comment ? `: ${comment}` : ""}`);
    this.review = review;
    this.reviewer = reviewer;
    this.comment = comment;
  }
}

/** Nobody decided in time and the rule's `on_timeout` denies the action. */
export class Expired extends NotApproved {
  readonly review: Review;

  constructor(review: Review) {
    const note = review.resolutionNote ? ` (${review.resolutionNote})` : "";
    super(`review ${review.reviewId} expired${note}`);
    this.review = review;
  }
}

/** The review was withdrawn (by the agent, or an admin) before anyone decided. */
export class Cancelled extends NotApproved {
  readonly review: Review;

  constructor(review: Review) {
    const note = review.resolutionNote ? `: ${review.resolutionNote}` : "";
    super(`review ${review.reviewId} was cancelled${note}`);
    this.review = review;
  }
}

/**
 * The client stopped waiting (its `timeoutMs` passed); the review stays pending on the
 * server. `review` is the last state seen. `require()` again with the same `requestId`
 * resumes waiting on the same review.
 */
export class ReviewTimeout extends NotApproved {
  static override readonly defaultCode: Code = Code.DeadlineExceeded;
  readonly reviewId: string;
  readonly review: Review | undefined;

  constructor(reviewId: string, review: Review | undefined, waitedMs: number, cause?: unknown) {
    super(
      `review ${reviewId} still pending after ${(waitedMs / 1000).toFixed(1)}s of waiting; ` +
        "it stays open on the server",
      { cause },
    );
    this.reviewId = reviewId;
    this.review = review;
  }
}

/** What the client would execute is not what the server says was reviewed or approved. */
export class DigestMismatch extends NotApproved {
  static override readonly defaultCode: Code = Code.DataLoss;
  readonly review: Review;
  readonly field: "action_digest" | "final_digest";
  readonly expected: string;
  readonly actual: string;

  constructor(
    review: Review,
    detail: { field: "action_digest" | "final_digest"; expected: string; actual: string },
  ) {
    super(
      `review ${review.reviewId}: ${detail.field} is ${detail.expected || "(empty)"} but the ` +
        `action this client would execute hashes to ${detail.actual}; refusing to execute`,
    );
    this.review = review;
    this.field = detail.field;
    this.expected = detail.expected;
    this.actual = detail.actual;
  }
}

// The one place that decides which error a status code becomes. Codes not listed
// (Internal, Unknown, Unimplemented...) become a plain SignoffError carrying the code.
const BY_CODE = new Map<Code, new (message: string, options?: { code?: Code; cause?: unknown }) => SignoffError>([
  [Code.InvalidArgument, InvalidArgument],
  [Code.NotFound, NotFound],
  [Code.AlreadyExists, AlreadyExists],
  [Code.PermissionDenied, PermissionDenied],
  [Code.Unauthenticated, Unauthenticated],
  [Code.FailedPrecondition, FailedPrecondition],
  [Code.Unavailable, Unavailable],
  [Code.DeadlineExceeded, DeadlineExceeded],
  [Code.ResourceExhausted, ResourceExhausted],
]);

/** Return the typed error for a status code and the server's message. */
export function fromStatus(code: Code, message: string, cause?: unknown): SignoffError {
  const Cls = BY_CODE.get(code) ?? SignoffError;
  return new Cls(message || Code[code] || "unknown error", { code, cause });
}

/** Return the typed error for anything a call threw (a ConnectError, or any other error). */
export function fromError(err: unknown): SignoffError {
  if (err instanceof SignoffError) return err;
  const e = ConnectError.from(err);
  // rawMessage is the server's message without Connect's "[code] " prefix.
  const error = fromStatus(e.code, e.rawMessage, err);
  if (error instanceof ResourceExhausted) error.retryAfterMs = retryDelayMs(e);
  return error;
}

/**
 * The delay of the error's google.rpc.RetryInfo detail, in ms, if it has one. Read by hand
 * (its one field is a Duration) rather than from generated googleapis code: Connect hands
 * over the detail's bytes over both transports, and nothing else of google.rpc is needed.
 */
export function retryDelayMs(error: ConnectError): number | undefined {
  for (const detail of error.details) {
    // Details received are {type, value: bytes}; the other shape is a detail to send.
    if (!("type" in detail) || detail.type !== "google.rpc.RetryInfo") continue;
    try {
      const reader = new BinaryReader(detail.value);
      while (reader.pos < reader.len) {
        const [field, wireType] = reader.tag();
        if (field === 1 && wireType === WireType.LengthDelimited) {
          const delay = fromBinary(DurationSchema, reader.bytes());
          return Math.max(0, Number(delay.seconds) * 1000 + delay.nanos / 1e6);
        }
        reader.skip(wireType);
      }
    } catch {
      return undefined; // a garbled detail is no reason to hide the status itself
    }
  }
  return undefined;
}
