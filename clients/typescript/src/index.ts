/**
 * TypeScript client of Signoff, the human-in-the-loop decision service. Browser-safe: no
 * Node imports here (the gRPC transport is in `@signoff/client/node`, the browser's
 * Connect transport in `@signoff/client/web`).
 *
 *     import { createSignoffClient, NotApproved } from "@signoff/client";
 *
 * Also re-exports every generated message, enum and service of `signoff.v1`.
 */

export {
  SignoffClient,
  createSignoffClient,
  withBearerToken,
  type CallOptions,
  type ListReviewsOptions,
  type RequireOptions,
  type ScreenOptions,
  type ScreenResult,
  type SignoffClientOptions,
  type SubmitOptions,
  type TokenSource,
  type VerdictLike,
  type WaitOptions,
} from "./client.js";
export { fromDecision, fromReview, isFinal, type Approval } from "./approval.js";
export {
  actionDigest,
  actionDigests,
  canonicalJson,
  digestDocument,
  legacyCanonicalJson,
  sha256Hex,
  type DigestPrincipal,
  type DigestResource,
} from "./canonical.js";
export { MASK, mask, remask, unmask } from "./masking.js";
export { ProofError, leafHash, rootFromInclusionProof, verifyConsistency, verifyInclusion } from "./merkle.js";
export { newRequestId, toActionRequest, type ActionInput, type PrincipalInput, type ResourceInput } from "./request.js";
export * from "./errors.js";
export {
  BadSignature,
  DEFAULT_LEEWAY_MS,
  MalformedReceipt,
  ReceiptError,
  ReceiptExpired,
  ReceiptNotYetValid,
  UnknownKey,
  WrongAction,
  checkAction,
  readReceipt,
  verifyReceipt,
  type PublicKeyInput,
  type VerifiedReceipt,
  type VerifyOptions,
} from "./receipts.js";

export {
  COSIGNATURE_TYPE,
  COSIGNATURE_VERSION,
  checkpointBytes,
  cosignatureBytes,
  verifyCheckpoint,
  verifyConsistencyProof,
  verifyCosignatures,
  verifyInclusionProof,
  verifyLeaf,
} from "./auditProofs.js";
export { verifyReceiptProof, type LoggedReceipt, type ReceiptProofOptions } from "./receiptProofs.js";

export * from "./gen/signoff/v1/common_pb.js";
export * from "./gen/signoff/v1/decision_pb.js";
export * from "./gen/signoff/v1/review_pb.js";
export * from "./gen/signoff/v1/audit_pb.js";
export * from "./gen/signoff/v1/policy_pb.js";
export { gate, type GateOption, type GateOptions } from "./gate.js";
