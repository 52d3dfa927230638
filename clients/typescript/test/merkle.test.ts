// The RFC 9162 primitives (src/merkle.ts) at their edges; every published vector runs in
// audit-proofs.test.ts (tests/unit/data/rfc6962_proof_vectors.json, shared with Python).
import { expect, test } from "vitest";
import { ProofError, leafHash, rootFromInclusionProof, verifyConsistency, verifyInclusion } from "../src/merkle.js";

test("a tree of one leaf: its root is the leaf hash, with an empty proof", async () => {
  const leaf = await leafHash(new TextEncoder().encode("entry 1"));
  await expect(verifyInclusion(leaf, 0, 1, [], leaf)).resolves.toBeUndefined();
  await expect(verifyInclusion(leaf, 1, 1, [], leaf)).rejects.toThrow(ProofError);
  await expect(verifyConsistency(1, 1, [], leaf, leaf)).resolves.toBeUndefined();
  await expect(verifyConsistency(2, 1, [], leaf, leaf)).rejects.toThrow("size 2 is not at most size 1");
});

test("a proof node that is not a SHA-256 hash is refused, whatever else holds", async () => {
  const leaf = await leafHash(Uint8Array.of(1));
  await expect(rootFromInclusionProof(leaf, 0, 2, [new Uint8Array(31)])).rejects.toThrow("a proof node is 31 bytes");
  await expect(verifyConsistency(1, 2, [new Uint8Array(33)], leaf, leaf)).rejects.toThrow("a proof node is 33 bytes");
});
