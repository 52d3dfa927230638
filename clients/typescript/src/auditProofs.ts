/**
 * Check the audit log's proofs offline: signed tree heads, inclusion, consistency.
 *
 * The same checks as Python's `signoff_client.audit_proofs`, trusting nothing the server
 * says: a version 2 checkpoint (`GetCheckpoints`) signs the head of the log's Merkle tree
 * (RFC 9162), `verifyCheckpoint` checks its Ed25519 signature over the documented bytes
 * (service/signoff/core/checkpoints.py), `verifyInclusionProof` that a `GetInclusionProof`
 * answer puts its entry in that signed log, `verifyConsistencyProof` that a log one
 * checkpoint signed is a prefix of the one a later checkpoint signed. The proof algorithms
 * are RFC 9162 2.1.3.2 and 2.1.4.2, tested on transparency-dev/merkle's vectors.
 */

import { canonicalJson } from "./canonical.js";
import type { Checkpoint, GetConsistencyProofResponse, GetInclusionProofResponse } from "./gen/signoff/v1/audit_pb.js";
import { ProofError, leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { importKey } from "./receipts.js";

function subtleCrypto(): SubtleCrypto {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error("WebCrypto (crypto.subtle) is not available");
  return subtle;
}

async function sha256(parts: Uint8Array[]): Promise<Uint8Array> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await subtleCrypto().digest("SHA-256", out));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(text)) return new Uint8Array();
  return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The bytes a checkpoint's signature covers: version 2 when it carries a root hash. */
export function checkpointBytes(cp: Checkpoint): Uint8Array {
  const t = cp.time;
  const micros = String(Math.floor((t?.nanos ?? 0) / 1000)).padStart(6, "0");
  const iso = new Date(Number(t?.seconds ?? 0n) * 1000).toISOString().slice(0, 19);
  const doc: Record<string, string | number> = {
    v: 1,
    type: "signoff.checkpoint",
    seq: Number(cp.seq),
    head_hash: cp.headHash,
    time: `${iso}.${micros}Z`,
    key_id: cp.keyId,
  };
  if (cp.rootHash) Object.assign(doc, { v: 2, tree_size: Number(cp.treeSize), root_hash: cp.rootHash });
  return new TextEncoder().encode(canonicalJson(doc));
}

/** Throw ProofError unless `publicKey` (PEM, 32 raw bytes or a CryptoKey) signed `cp`, a
 * version 2 checkpoint (one that signs a tree head). */
export async function verifyCheckpoint(cp: Checkpoint, publicKey: CryptoKey | Uint8Array | string): Promise<void> {
  const subtle = subtleCrypto();
  const key = await importKey(subtle, publicKey);
  const raw = new Uint8Array(await subtle.exportKey("raw", key));
  const kid = hex(await sha256([raw])).slice(0, 16);
  if (cp.keyId !== kid) throw new ProofError(`checkpoint at seq ${cp.seq} is signed by key "${cp.keyId}", not this key`);
  if (!cp.rootHash) throw new ProofError(`checkpoint at seq ${cp.seq} signs no tree head (version 1)`);
  if (cp.treeSize !== cp.seq) throw new ProofError(`checkpoint at seq ${cp.seq} signs a tree of ${cp.treeSize} entries`);
  let signature: Uint8Array;
  try {
    signature = Uint8Array.from(atob(cp.signature), (c) => c.charCodeAt(0));
  } catch {
    throw new ProofError(`checkpoint at seq ${cp.seq}: the signature is not base64`);
  }
  const ok = await subtle.verify({ name: "Ed25519" }, key, new Uint8Array(signature), new Uint8Array(checkpointBytes(cp)));
  if (!ok) throw new ProofError(`checkpoint at seq ${cp.seq}: the signature does not verify`);
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
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(resp.leaf)) as Record<string, unknown>;
  } catch {
    throw new ProofError("the leaf is not JSON");
  }
  const seq = resp.leafIndex + 1n;
  if (typeof fields !== "object" || fields === null || BigInt(Number(fields.seq ?? -1)) !== seq) {
    throw new ProofError(`the leaf is not the entry at seq ${seq}`);
  }
  const prev = typeof fields.prev_hash === "string" ? fields.prev_hash : "";
  const digest = hex(await sha256([new TextEncoder().encode(prev), resp.leaf]));
  if (resp.entry && digest !== resp.entry.hash) throw new ProofError(`the leaf is not the entry whose hash is ${resp.entry.hash.slice(0, 12)}...`);
  const root = unhex(checkpoint.rootHash);
  if (root.length !== 32) throw new ProofError(`checkpoint at seq ${checkpoint.seq} has no 32-byte root_hash`);
  try {
    await verifyInclusion(await leafHash(resp.leaf), resp.leafIndex, resp.treeSize, resp.proof, root);
  } catch (err) {
    throw new ProofError(`entry seq ${seq}: ${(err as Error).message}`);
  }
  return { ...fields, hash: digest };
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
