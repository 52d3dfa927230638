/**
 * Check the audit log's proofs offline: signed tree heads, inclusion, consistency.
 *
 * The same checks as Python's `signoff_client.audit_proofs`, trusting nothing the server
 * says: a version 2 checkpoint (`GetCheckpoints`) signs the head of the log's Merkle tree
 * (RFC 9162), `verifyCheckpoint` checks its Ed25519 signature over the documented bytes
 * (service/signoff/core/checkpoints.py), `verifyInclusionProof` that a `GetInclusionProof`
 * answer puts its entry in that signed log, `verifyConsistencyProof` that a log one
 * checkpoint signed is a prefix of the one a later checkpoint signed, `verifyCosignatures`
 * which witnesses co-signed a checkpoint's tree head (their own keys, the bytes of
 * `cosignatureBytes`: service/signoff/core/witness.py). The proof algorithms are RFC 9162
 * 2.1.3.2 and 2.1.4.2, tested on transparency-dev/merkle's vectors.
 */

import { hex, keyId, sha256, subtleCrypto } from "./bytes.js";
import { canonicalJson } from "./canonical.js";
import { toBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  AuditEntrySchema,
  type Checkpoint,
  type GetConsistencyProofResponse,
  type GetInclusionProofResponse,
} from "./gen/signoff/v1/audit_pb.js";
import { ProofError, leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { importKey, type PublicKeyInput } from "./receipts.js";

export const COSIGNATURE_VERSION = 1;
export const COSIGNATURE_TYPE = "signoff.witness.cosignature";
const HASH = /^[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{16}$/;
// Padded standard base64 only, as Python's b64decode(validate=True) takes it.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of strict (padded) base64 `text`; null if it is not that. */
function unbase64(text: string): Uint8Array | null {
  if (!BASE64.test(text)) return null;
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** RFC 3339 UTC with six fractional digits and "Z", as every signed document writes it (an
 * unset time is the epoch, as protobuf reads it). */
function timeText(t: Timestamp | Date | undefined): string {
  if (t instanceof Date) {
    if (Number.isNaN(t.getTime())) throw new RangeError("time is not a valid Date");
    return `${t.toISOString().slice(0, 23)}000Z`;
  }
  const micros = String(Math.floor((t?.nanos ?? 0) / 1000)).padStart(6, "0");
  const iso = new Date(Number(t?.seconds ?? 0n) * 1000).toISOString().slice(0, 19);
  return `${iso}.${micros}Z`;
}

function unhex(text: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(text)) return new Uint8Array();
  return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The bytes a checkpoint's signature covers: version 2 when it carries a root hash. */
export function checkpointBytes(cp: Checkpoint): Uint8Array {
  const doc: Record<string, string | number> = {
    v: 1,
    type: "signoff.checkpoint",
    seq: Number(cp.seq),
    head_hash: cp.headHash,
    time: timeText(cp.time),
    key_id: cp.keyId,
  };
  if (cp.rootHash) Object.assign(doc, { v: 2, tree_size: Number(cp.treeSize), root_hash: cp.rootHash });
  return new TextEncoder().encode(canonicalJson(doc));
}

/** Throw ProofError unless `publicKey` (PEM, 32 raw bytes or a CryptoKey) signed `cp`, a
 * version 2 checkpoint (one that signs a tree head). */
export async function verifyCheckpoint(cp: Checkpoint, publicKey: PublicKeyInput): Promise<void> {
  const subtle = subtleCrypto();
  const key = await importKey(subtle, publicKey);
  const kid = await keyId(key);
  if (cp.keyId !== kid) throw new ProofError(`checkpoint at seq ${cp.seq} is signed by key "${cp.keyId}", not this key`);
  if (!cp.rootHash) throw new ProofError(`checkpoint at seq ${cp.seq} signs no tree head (version 1)`);
  if (cp.treeSize !== cp.seq) throw new ProofError(`checkpoint at seq ${cp.seq} signs a tree of ${cp.treeSize} entries`);
  const signature = unbase64(cp.signature);
  if (!signature) throw new ProofError(`checkpoint at seq ${cp.seq}: the signature is not base64`);
  const ok = await subtle.verify({ name: "Ed25519" }, key, new Uint8Array(signature), new Uint8Array(checkpointBytes(cp)));
  if (!ok) throw new ProofError(`checkpoint at seq ${cp.seq}: the signature does not verify`);
}

/**
 * The bytes a witness's co-signature covers: the RFC 8785 canonical JSON of {"v": 1,
 * "type": "signoff.witness.cosignature", "log_key_id", "tree_size", "root_hash", "time",
 * "key_id"} (`key_id` names the witness's key), as Python's `cosignature_bytes` builds
 * them; RangeError naming the field if one is malformed.
 */
export function cosignatureBytes(
  logKeyId: string,
  treeSize: bigint | number,
  rootHash: string,
  time: Timestamp | Date,
  witnessKeyId: string,
): Uint8Array<ArrayBuffer> {
  for (const [what, kid] of [
    ["log_key_id", logKeyId],
    ["key_id", witnessKeyId],
  ] as const) {
    if (typeof kid !== "string" || !KEY_ID.test(kid)) {
      throw new RangeError(`${what} ${JSON.stringify(kid)} is not 16 lowercase hex characters`);
    }
  }
  const sizeOk = typeof treeSize === "bigint" ? treeSize >= 0n : Number.isSafeInteger(treeSize) && treeSize >= 0;
  if (!sizeOk) throw new RangeError(`tree_size ${String(treeSize)} is not a non-negative integer`);
  if (typeof rootHash !== "string" || !HASH.test(rootHash)) {
    throw new RangeError(`root_hash ${JSON.stringify(rootHash)} is not 64 lowercase hex characters`);
  }
  const doc = {
    v: COSIGNATURE_VERSION,
    type: COSIGNATURE_TYPE,
    log_key_id: logKeyId,
    tree_size: Number(treeSize),
    root_hash: rootHash,
    time: timeText(time),
    key_id: witnessKeyId,
  };
  return new TextEncoder().encode(canonicalJson(doc));
}

/**
 * Resolve to the key ids (sorted) of the witnesses, of `witnessKeys` (PEM, 32 raw bytes or
 * CryptoKeys), whose co-signatures of `cp`'s tree head verify; reject with ProofError if
 * fewer than `quorum`. A co-signature by another key, of another head, or that does not
 * verify is skipped; a witness counts once. Verify `cp` itself first, with
 * `verifyCheckpoint`.
 */
export async function verifyCosignatures(
  cp: Checkpoint,
  witnessKeys: Iterable<PublicKeyInput>,
  quorum: number,
): Promise<string[]> {
  const subtle = subtleCrypto();
  const keys = new Map<string, CryptoKey>();
  for (const input of witnessKeys) {
    const key = await importKey(subtle, input);
    keys.set(await keyId(key), key);
  }
  const valid = new Set<string>();
  for (const cs of cp.cosignatures) {
    const key = keys.get(cs.keyId);
    if (key === undefined || valid.has(cs.keyId)) continue;
    // A co-signature of another head proves nothing about this one.
    if (cs.logKeyId !== cp.keyId || cs.treeSize !== cp.treeSize || cs.rootHash !== cp.rootHash) continue;
    let ok: boolean;
    try {
      const data = cosignatureBytes(cs.logKeyId, cs.treeSize, cs.rootHash, cs.time ?? new Date(0), cs.keyId);
      const signature = unbase64(cs.signature);
      ok = signature !== null && (await subtle.verify({ name: "Ed25519" }, key, new Uint8Array(signature), new Uint8Array(data)));
    } catch {
      ok = false; // malformed, as Python's ValueError: not a witness's word
    }
    if (ok) valid.add(cs.keyId);
  }
  if (valid.size < quorum) {
    throw new ProofError(
      `the checkpoint at seq ${cp.seq} carries ${valid.size} valid co-signature(s) of the given witnesses ` +
        `(${cp.cosignatures.length} in all), ${quorum} needed`,
    );
  }
  return [...valid].sort();
}

/**
 * Check that `leaf` (an entry's canonical bytes) is leaf `leafIndex` of the tree `checkpoint`
 * signs, by the audit path `proof` (verify the checkpoint first, with `verifyCheckpoint`);
 * resolve to the entry's fields and its chain hash (as "hash"), read from the proven bytes.
 */
export async function verifyLeaf(
  leaf: Uint8Array,
  leafIndex: bigint,
  proof: Uint8Array[],
  checkpoint: Checkpoint,
): Promise<Record<string, unknown>> {
  let fields: unknown;
  try {
    fields = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leaf));
  } catch {
    throw new ProofError("the leaf is not JSON");
  }
  const seq = leafIndex + 1n;
  if (!isObject(fields) || !sameInteger(fields.seq, seq)) throw new ProofError(`the leaf is not the entry at seq ${seq}`);
  const prev = Object.hasOwn(fields, "prev_hash") ? fields.prev_hash : "";
  if (typeof prev !== "string" || !/^[\x00-\x7f]*$/.test(prev)) throw new ProofError("the leaf's prev_hash is not a hash");
  const root = unhex(checkpoint.rootHash);
  if (root.length !== 32) throw new ProofError(`checkpoint at seq ${checkpoint.seq} has no 32-byte root_hash`);
  try {
    await verifyInclusion(await leafHash(leaf), leafIndex, checkpoint.treeSize, proof, root);
  } catch (err) {
    if (err instanceof ProofError) throw new ProofError(`entry seq ${seq}: ${err.message}`);
    throw err;
  }
  return { ...fields, hash: hex(await sha256(new TextEncoder().encode(prev), leaf)) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sameInteger(value: unknown, want: bigint): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && BigInt(value) === want;
}

/** Check that the entry of `resp` is in the log `checkpoint` signs (verify the checkpoint
 * first, with `verifyCheckpoint`); return the entry's fields, read from the proven leaf. */
export async function verifyInclusionProof(
  resp: GetInclusionProofResponse,
  checkpoint: Checkpoint,
): Promise<Record<string, unknown>> {
  if (resp.treeSize !== checkpoint.treeSize) {
    throw new ProofError(`the proof is for a log of ${resp.treeSize} entries, the checkpoint signs ${checkpoint.treeSize}`);
  }
  const fields = await verifyLeaf(resp.leaf, resp.leafIndex, resp.proof, checkpoint);
  // An entry message left empty (Python: `ByteSize() == 0`) names no hash to compare.
  if (resp.entry && toBinary(AuditEntrySchema, resp.entry).length > 0 && fields.hash !== resp.entry.hash) {
    throw new ProofError(`the leaf is not the entry whose hash is ${resp.entry.hash.slice(0, 12)}...`);
  }
  return fields;
}

/** Check that the log `older` signs is a prefix of the log `newer` signs, by `resp`
 * (verify both checkpoints first, with `verifyCheckpoint`). */
export async function verifyConsistencyProof(
  resp: GetConsistencyProofResponse,
  older: Checkpoint,
  newer: Checkpoint,
): Promise<void> {
  if (resp.first !== older.treeSize || resp.second !== newer.treeSize) {
    throw new ProofError(`the proof is for sizes ${resp.first}, ${resp.second}; the checkpoints sign ${older.treeSize}, ${newer.treeSize}`);
  }
  await verifyConsistency(resp.first, resp.second, resp.proof, unhex(older.rootHash), unhex(newer.rootHash));
}
