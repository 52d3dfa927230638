// The audit log's proof verifiers (src/auditProofs.ts) on transparency-dev/merkle's published
// vectors (tests/unit/data, shared with the Python client's test), good and bad; and a
// checkpoint the server's code signed with an inclusion proof it made (the fixture that
// tests/unit/test_log_tree.py keeps fresh).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { create } from "@bufbuild/protobuf";
import {
  AuditEntrySchema,
  CheckpointSchema,
  GetInclusionProofResponseSchema,
  ProofError,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
  verifyInclusionProof,
} from "../src/index.js";

type Case = Record<string, unknown> & { file: string; wantErr: boolean };
const vectors = JSON.parse(
  readFileSync(join(__dirname, "..", "..", "..", "tests", "unit", "data", "rfc6962_proof_vectors.json"), "utf8"),
) as { inclusion: Case[]; consistency: Case[] };

const b64 = (v: unknown) => (typeof v === "string" ? Uint8Array.from(atob(v), (c) => c.charCodeAt(0)) : new Uint8Array());
const proof = (v: unknown) => ((v as string[] | null) ?? []).map(b64);

async function outcome(check: () => Promise<void>): Promise<"ok" | "refused"> {
  try {
    await check();
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(ProofError);
    return "refused";
  }
}

describe("inclusion vectors", () => {
  test.each(vectors.inclusion.map((c) => [c.file, c] as const))("%s", async (_, c) => {
    const got = await outcome(() =>
      verifyInclusion(b64(c.leafHash), BigInt(c.leafIdx as number), BigInt(c.treeSize as number), proof(c.proof), b64(c.root)),
    );
    expect(got).toBe(c.wantErr ? "refused" : "ok");
  });
});

describe("consistency vectors", () => {
  test.each(vectors.consistency.map((c) => [c.file, c] as const))("%s", async (_, c) => {
    const got = await outcome(() =>
      verifyConsistency(BigInt(c.size1 as number), BigInt(c.size2 as number), proof(c.proof), b64(c.root1), b64(c.root2)),
    );
    expect(got).toBe(c.wantErr ? "refused" : "ok");
  });
});

test("the vectors hold both outcomes", () => {
  for (const kind of [vectors.inclusion, vectors.consistency]) {
    expect(new Set(kind.map((c) => c.wantErr))).toEqual(new Set([true, false]));
  }
});

const fixture = JSON.parse(
  readFileSync(join(__dirname, "..", "..", "..", "tests", "unit", "data", "audit_proof_fixture.json"), "utf8"),
);

function signed() {
  const c = fixture.checkpoint;
  return create(CheckpointSchema, {
    seq: BigInt(c.seq),
    headHash: c.head_hash,
    time: { seconds: BigInt(c.time_seconds), nanos: c.time_nanos },
    keyId: c.key_id,
    signature: c.signature,
    treeSize: BigInt(c.tree_size),
    rootHash: c.root_hash,
  });
}

function inclusion() {
  const i = fixture.inclusion;
  return create(GetInclusionProofResponseSchema, {
    entry: create(AuditEntrySchema, { seq: BigInt(i.leaf_index + 1), hash: i.entry_hash }),
    leaf: b64(i.leaf_b64),
    leafIndex: BigInt(i.leaf_index),
    treeSize: BigInt(i.tree_size),
    proof: proof(i.proof_b64),
  });
}

describe("a signed tree head and an inclusion proof from the server's code", () => {
  const key = b64(fixture.public_key_raw_b64);

  test("verify, and the proven leaf gives the entry", async () => {
    const cp = signed();
    await verifyCheckpoint(cp, key);
    const fields = await verifyInclusionProof(inclusion(), cp);
    expect(fields.seq).toBe(3);
    expect(fields.hash).toBe(fixture.inclusion.entry_hash);
    expect((fields.payload as Record<string, unknown>).note).toBe("é\n");
  });

  test("an altered head, leaf or proof fails", async () => {
    const cp = signed();
    cp.rootHash = "ab".repeat(32);
    await expect(verifyCheckpoint(cp, key)).rejects.toThrow(/signature does not verify/);
    await expect(verifyInclusionProof(inclusion(), cp)).rejects.toThrow(/entry seq 3/);
    const altered = inclusion();
    altered.leaf = new TextEncoder().encode(new TextDecoder().decode(altered.leaf).replace('"n":3', '"n":4'));
    // The path is checked first, as in Python: an edited leaf is not in the signed tree.
    await expect(verifyInclusionProof(altered, signed())).rejects.toThrow(/entry seq 3: .* not in the tree/);
    const otherEntry = inclusion();
    otherEntry.entry!.hash = "00".repeat(32);
    await expect(verifyInclusionProof(otherEntry, signed())).rejects.toThrow(/not the entry whose hash/);
    const noEntry = inclusion();
    noEntry.entry = create(AuditEntrySchema);
    expect((await verifyInclusionProof(noEntry, signed())).seq).toBe(3); // an empty entry names no hash
    const bad = inclusion();
    bad.proof[0] = new Uint8Array(32);
    await expect(verifyInclusionProof(bad, signed())).rejects.toThrow(/is not in the tree of size/);
    // Base64 as Python's b64decode(validate=True) reads it: padded, nothing else.
    for (const signature of [signed().signature.replace(/=+$/, ""), ` ${signed().signature}`]) {
      const loose = signed();
      loose.signature = signature;
      await expect(verifyCheckpoint(loose, key)).rejects.toThrow(/the signature is not base64/);
    }
    const other = new Uint8Array(key);
    other[0]! ^= 1;
    await expect(verifyCheckpoint(signed(), other)).rejects.toBeInstanceOf(Error);
  });
});
