/**
 * Check offline that a receipt's allow is in the audit log its witnesses co-signed.
 *
 *     const logged = await verifyReceiptProof(proof, serverKeyPem, {
 *       witnessKeys: [alicePem, bobPem],
 *       quorum: 2,
 *     });
 *     logged.seq, logged.witnesses; // the entry that recorded the allow, who vouched
 *
 * `proof` is a `ReceiptProof` (the answer of `GetReceiptProof`) or its serialized bytes:
 * the receipt, the audit entry that recorded its allow, that entry's inclusion path and a
 * version 2 checkpoint with its witnesses' co-signatures. The same checks, in the same
 * order, as Python's `signoff_client.receipt_proofs.verify`, with no call to the server:
 *
 * 1. the receipt is signed by the server's key (`readReceipt`; and, given `action`, that it
 *    allows exactly that action -- its expiry does not matter here, only what it says);
 * 2. the checkpoint is signed by the server's key and signs a tree head, and at least
 *    `quorum` of the given witnesses co-signed that head;
 * 3. the entry is leaf seq - 1 of that tree (RFC 9162 inclusion proof);
 * 4. the entry is the receipt's allow: its decision ("decision", AUTO_ALLOW, the same
 *    decision_id), or its review's approving act (the same review and decision, the
 *    review's state the receipt's outcome, and the entry's `final_digest` the receipt's
 *    action digest).
 *
 * A server that later removed or changed that entry would have to show the witnesses a log
 * that is not an extension of the one they co-signed, which they refuse.
 */

import { create, fromBinary } from "@bufbuild/protobuf";
import { verifyCheckpoint, verifyCosignatures, verifyLeaf } from "./auditProofs.js";
import { CheckpointSchema, ReceiptProofSchema, type ReceiptProof } from "./gen/signoff/v1/audit_pb.js";
import { ProofError } from "./merkle.js";
import { checkAction, readReceipt, type PublicKeyInput, type VerifiedReceipt } from "./receipts.js";
import type { ActionInput } from "./request.js";

/** The entry types that record a review's approving act, by the receipt's outcome. */
const APPROVING = new Map([
  ["APPROVED", "review.approved"],
  ["MODIFIED", "review.modified"],
]);

/** A receipt shown to be in the witnessed log, and where. */
export interface LoggedReceipt {
  receipt: VerifiedReceipt;
  /** The audit entry that recorded the allow. */
  seq: bigint;
  /** That entry's fields, read from the proven leaf (and its chain hash, as "hash"). */
  entry: Record<string, unknown>;
  /** The size of the tree the checkpoint signs, into which the entry was proven. */
  treeSize: bigint;
  rootHash: string;
  /** Key ids of the witnesses whose co-signatures verified, sorted. */
  witnesses: string[];
}

export interface ReceiptProofOptions {
  /** The witnesses' Ed25519 public keys (PEM, 32 raw bytes or CryptoKeys). */
  witnessKeys?: Iterable<PublicKeyInput>;
  /** Co-signatures by `witnessKeys` required (default 1); 0 accepts a checkpoint no
   * witness co-signed (then only the server's key vouches). */
  quorum?: number;
  /** Also require that the receipt allows exactly this action. */
  action?: ActionInput;
  /** The key that signed the checkpoint, if the server's key was rotated between the
   * receipt and the checkpoint (default: `publicKey`). */
  checkpointKey?: PublicKeyInput;
}

/**
 * Resolve to where the receipt of `proof` sits in the witnessed log; reject with
 * `ProofError` (the log side) or a `ReceiptError` (the receipt itself) if any check fails.
 * `publicKey` is the server's Ed25519 key (PEM, 32 raw bytes or a CryptoKey).
 */
export async function verifyReceiptProof(
  proof: ReceiptProof | Uint8Array,
  publicKey: PublicKeyInput,
  options: ReceiptProofOptions = {},
): Promise<LoggedReceipt> {
  let p: ReceiptProof;
  if (proof instanceof Uint8Array) {
    try {
      p = fromBinary(ReceiptProofSchema, proof);
    } catch {
      throw new ProofError("the bytes are not a serialized ReceiptProof");
    }
  } else {
    p = proof;
  }
  const quorum = options.quorum ?? 1;
  if (!(quorum >= 0)) throw new RangeError(`quorum must be 0 or more, not ${quorum}`);
  const stated = await readReceipt(p.receipt, publicKey);
  if (options.action !== undefined) await checkAction(stated, options.action);
  // An unset checkpoint reads as an empty one, as in Python: refused for its key id.
  const cp = p.checkpoint ?? create(CheckpointSchema);
  await verifyCheckpoint(cp, options.checkpointKey ?? publicKey);
  const witnesses = await verifyCosignatures(cp, options.witnessKeys ?? [], quorum);
  const entry = await verifyLeaf(p.leaf, p.leafIndex, p.proof, cp);
  bind(entry, stated);
  return {
    receipt: stated,
    seq: p.leafIndex + 1n,
    entry,
    treeSize: cp.treeSize,
    rootHash: cp.rootHash,
    witnesses,
  };
}

/** Throw ProofError unless `entry` is the log's record of the allow `stated` describes. */
function bind(entry: Record<string, unknown>, stated: VerifiedReceipt): void {
  const mismatch = (what: string, want: unknown, got: unknown): ProofError =>
    new ProofError(
      `entry seq ${String(entry.seq)} is not this receipt's allow: ${what} is ${show(got)}, the receipt says ${show(want)}`,
    );
  if (entry.decision_id !== stated.decisionId) throw mismatch("decision_id", stated.decisionId, entry.decision_id);
  let checks: [string, string][];
  const approving = APPROVING.get(stated.outcome);
  if (!stated.reviewId) {
    checks = [
      ["type", "decision"],
      ["outcome", "AUTO_ALLOW"],
      ["review_id", ""],
    ];
  } else if (approving !== undefined) {
    const payload = entry.payload;
    const isDict = typeof payload === "object" && payload !== null && !Array.isArray(payload);
    const final = isDict ? (payload as Record<string, unknown>).final_digest : undefined;
    if (final !== stated.actionDigest) throw mismatch("payload.final_digest", stated.actionDigest, final);
    checks = [
      ["type", approving],
      ["review_id", stated.reviewId],
      ["review_state", stated.outcome],
    ];
  } else {
    throw new ProofError(`the receipt's outcome ${JSON.stringify(stated.outcome)} allows nothing`);
  }
  for (const [name, want] of checks) {
    if (entry[name] !== want) throw mismatch(name, want, entry[name]);
  }
}

/** A JSON value as a message shows it ("missing" when absent). */
function show(value: unknown): string {
  return value === undefined ? "missing" : JSON.stringify(value);
}
