/**
 * Verify a signed receipt offline: exactly this action was allowed, and not too long ago.
 *
 * The service that finally executes an action checks the receipt the agent passes along
 * (`decision.receipt`, `review.receipt`, or its bytes) with the server's Ed25519 public key
 * (`GetCheckpoints`' `publicKeyPem`), without calling the server. The contract is the
 * server's `signoff.app.receipts`; this is the same check as Python's
 * `signoff_client.receipts.verify`. Version 1 receipts are signed one by one; version 2
 * receipts are leaves of a Merkle tree whose root the server signed once per write batch:
 * the receipt carries its inclusion path, the root is recomputed from it (RFC 9162
 * 2.1.3.2) and the signature checked over the batch's root document, offline as well.
 *
 * Uses WebCrypto Ed25519: Node 20+, and browsers that implement Ed25519 in `crypto.subtle`
 * (Chrome 137+, Firefox 129+, Safari 17+); elsewhere `importKey` throws.
 */

import { fromBinary, type JsonObject } from "@bufbuild/protobuf";
import { hex, keyId, owned, subtleCrypto } from "./bytes.js";
import { actionDigests, canonicalJson, type DigestPrincipal, type DigestResource } from "./canonical.js";
import { ReceiptSchema, type Receipt } from "./gen/signoff/v1/common_pb.js";
import { mask } from "./masking.js";
import { ProofError, leafHash, rootFromInclusionProof } from "./merkle.js";
import type { ActionInput } from "./request.js";

export const RECEIPT_VERSION = 1;
/** A leaf of a write batch's Merkle tree, whose root is signed. */
export const BATCH_VERSION = 2;
export const RECEIPT_TYPE = "signoff.receipt";
export const BATCH_TYPE = "signoff.receipt.batch";
/** Allowance for clock skew between the server and the verifier. */
export const DEFAULT_LEEWAY_MS = 30_000;

/** The receipt does not prove that this action may execute now; never execute it. */
export class ReceiptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** Missing, not a receipt, or of a version this client does not know. */
export class MalformedReceipt extends ReceiptError {}
/** Signed (so it says) by another key than the one given. */
export class UnknownKey extends ReceiptError {}
/** The signature does not match the payload: altered, or not from this server. */
export class BadSignature extends ReceiptError {}
/** The receipt's `expires_at` (plus leeway) has passed. */
export class ReceiptExpired extends ReceiptError {}
/** The receipt's `issued_at` is in the future (beyond leeway): a clock is wrong. */
export class ReceiptNotYetValid extends ReceiptError {}
/** The receipt is for another action (its digest differs from this action's). */
export class WrongAction extends ReceiptError {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`receipt is for action digest ${expected}, this action is ${actual}`);
  }
}

/** What a valid receipt states. */
export interface VerifiedReceipt {
  decisionId: string;
  /** "" for an AUTO_ALLOW decision. */
  reviewId: string;
  actionDigest: string;
  redactedPaths: string[];
  /** "AUTO_ALLOW", "APPROVED" or "MODIFIED". */
  outcome: string;
  approvers: string[];
  issuedAt: Date;
  expiresAt: Date;
  keyId: string;
}

export interface VerifyOptions {
  /** Check at this time instead of now. */
  now?: Date;
  leewayMs?: number;
}

/** An Ed25519 public key as the verifiers take it: PEM (SPKI), the 32 raw bytes, or a CryptoKey. */
export type PublicKeyInput = CryptoKey | Uint8Array | string;

/**
 * Resolve to what `receipt` states if it is valid for `action` now; reject with a
 * `ReceiptError` if not. `receipt`: a `Receipt`, its serialized bytes, or a Decision or
 * Review carrying one. `publicKey`: PEM (SPKI), the 32 raw bytes, or an Ed25519 `CryptoKey`.
 * `action`: what is about to execute, as `evaluate` takes it.
 */
export async function verifyReceipt(
  receipt: Receipt | Uint8Array | { receipt?: Receipt } | undefined,
  publicKey: PublicKeyInput,
  action: ActionInput,
  options: VerifyOptions = {},
): Promise<VerifiedReceipt> {
  const v = await readReceipt(receipt, publicKey);
  await checkAction(v, action);
  const now = (options.now ?? new Date()).getTime();
  const leeway = options.leewayMs ?? DEFAULT_LEEWAY_MS;
  if (now < v.issuedAt.getTime() - leeway) {
    throw new ReceiptNotYetValid(`receipt issued at ${v.issuedAt.toISOString()}, it is ${new Date(now).toISOString()}`);
  }
  if (now > v.expiresAt.getTime() + leeway) {
    throw new ReceiptExpired(`receipt expired at ${v.expiresAt.toISOString()}, it is ${new Date(now).toISOString()}`);
  }
  return v;
}

/**
 * Resolve to what `receipt` states if `publicKey` signed it, whatever the action and the
 * time (`verifyReceipt` checks those too); reject with a `ReceiptError` if not.
 */
export async function readReceipt(
  receipt: Receipt | Uint8Array | { receipt?: Receipt } | undefined,
  publicKey: PublicKeyInput,
): Promise<VerifiedReceipt> {
  const r = receiptOf(receipt);
  const subtle = subtleCrypto();
  const key = await importKey(subtle, publicKey);
  const kid = await keyId(key);
  if (r.keyId !== kid) throw new UnknownKey(`receipt key_id "${r.keyId}" is not the given key's "${kid}"`);
  // The version is read from the message's tree fields, then required of the payload
  // (`parse`): a payload signed alone is never taken for a leaf, nor a leaf for one.
  const version = r.treeSize > 0n ? BATCH_VERSION : RECEIPT_VERSION;
  const signed = await signedBytes(r, kid);
  if (!(await subtle.verify({ name: "Ed25519" }, key, owned(r.signature), signed))) {
    throw new BadSignature("receipt signature does not match its payload");
  }
  return parse(r.payload, kid, version);
}

/** Reject with `WrongAction` unless `verified` allows exactly `action` (as `verifyReceipt` takes it). */
export async function checkAction(verified: VerifiedReceipt, action: ActionInput): Promise<void> {
  const digests = await digestsOf(action, verified.redactedPaths);
  // The second digest, if any, is the pre-0.2.0 number form a receipt signed then carries.
  if (!digests.includes(verified.actionDigest)) throw new WrongAction(verified.actionDigest, digests[0]!);
}

/** What the signature must cover: the payload (version 1), or the root document of the
 * batch the payload's inclusion path leads to (version 2). */
async function signedBytes(r: Receipt, kid: string): Promise<Uint8Array<ArrayBuffer>> {
  if (r.treeSize === 0n) {
    if (r.path.length > 0 || r.leafIndex !== 0n) throw new MalformedReceipt("receipt has a path but no tree size");
    return owned(r.payload);
  }
  const root = await rootFromPath(r.payload, r.leafIndex, r.treeSize, r.path);
  const doc = { v: BATCH_VERSION, type: BATCH_TYPE, tree_size: Number(r.treeSize), root: hex(root), key_id: kid };
  return owned(new TextEncoder().encode(canonicalJson(doc)));
}

/** The root a leaf's inclusion path leads to (RFC 9162 2.1.3.2); BadSignature if the path
 * cannot belong to leaf `index` of a tree of `size`. */
async function rootFromPath(
  payload: Uint8Array,
  index: bigint,
  size: bigint,
  path: Uint8Array[],
): Promise<Uint8Array> {
  const leaf = await leafHash(payload);
  try {
    return await rootFromInclusionProof(leaf, index, size, path);
  } catch (e) {
    if (e instanceof ProofError) throw new BadSignature(`receipt inclusion path: ${e.message}`);
    throw e;
  }
}

function receiptOf(value: Receipt | Uint8Array | { receipt?: Receipt } | undefined): Receipt {
  let r: Receipt | undefined;
  if (value instanceof Uint8Array) {
    try {
      r = fromBinary(ReceiptSchema, value);
    } catch {
      throw new MalformedReceipt("receipt bytes are not a serialized Receipt");
    }
  } else if (value && "payload" in value) {
    r = value as Receipt;
  } else {
    r = (value as { receipt?: Receipt } | undefined)?.receipt;
  }
  if (!r || r.payload.length === 0) {
    throw new MalformedReceipt("no receipt: only AUTO_ALLOW and approved reviews carry one");
  }
  return r;
}

export async function importKey(subtle: SubtleCrypto, key: PublicKeyInput): Promise<CryptoKey> {
  if (typeof key === "string") {
    const body = key.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
    const der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
    return subtle.importKey("spki", der, { name: "Ed25519" }, true, ["verify"]);
  }
  if (key instanceof Uint8Array) {
    if (key.length !== 32) throw new TypeError("publicKey: expected the 32 raw bytes of an Ed25519 key");
    return subtle.importKey("raw", owned(key), { name: "Ed25519" }, true, ["verify"]);
  }
  return key;
}

function parse(payload: Uint8Array, kid: string, version: number): VerifiedReceipt {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload)) as Record<string, unknown>;
  } catch (err) {
    throw new MalformedReceipt(`receipt payload: ${(err as Error).message}`);
  }
  if (doc.v !== version || doc.type !== RECEIPT_TYPE) {
    throw new MalformedReceipt(
      `receipt version ${String(doc.v)} type ${String(doc.type)} is not ${version} "${RECEIPT_TYPE}"`,
    );
  }
  if (doc.key_id !== kid) throw new UnknownKey(`receipt payload key_id "${String(doc.key_id)}" is not "${kid}"`);
  const strings = (name: string): string[] => {
    const v = doc[name];
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
      throw new MalformedReceipt(`receipt payload: ${name} is not a list of strings`);
    }
    return v as string[];
  };
  const text = (name: string): string => {
    if (typeof doc[name] !== "string") throw new MalformedReceipt(`receipt payload: ${name} is not a string`);
    return doc[name] as string;
  };
  return {
    decisionId: text("decision_id"),
    reviewId: text("review_id"),
    actionDigest: text("action_digest"),
    redactedPaths: strings("redacted_paths"),
    outcome: text("outcome"),
    approvers: strings("approvers"),
    issuedAt: time(text("issued_at"), "issued_at"),
    expiresAt: time(text("expires_at"), "expires_at"),
    keyId: kid,
  };
}

const TIME = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\d{3}Z$/;

function time(value: string, name: string): Date {
  const m = TIME.exec(value);
  if (!m) throw new MalformedReceipt(`receipt payload: ${name} "${value}" is not an RFC 3339 UTC time`);
  return new Date(`${m[1]}Z`); // milliseconds: what a Date holds
}

async function digestsOf(action: ActionInput, redactedPaths: string[]): Promise<string[]> {
  const p = action.principal;
  const principal: DigestPrincipal = typeof p === "string" ? { id: p } : { ...(p ?? {}) };
  const resource: DigestResource = { ...(action.resource ?? {}) };
  const params: JsonObject | undefined = action.params;
  return actionDigests(action.action, mask(params, redactedPaths), principal, resource);
}
