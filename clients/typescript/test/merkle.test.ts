// RFC 9162 proof verification against transparency-dev/merkle's vectors (vendored in
// tests/vectors/merkle): every case must verify exactly when it says it should.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { ProofError, leafHash, verifyConsistency, verifyInclusion } from "../src/merkle.js";

const VECTORS = join(import.meta.dirname, "..", "..", "..", "tests", "vectors", "merkle");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith(".json") ? [path] : [];
  });
}

const b64 = (s: string | null | undefined): Uint8Array => (s ? Uint8Array.from(Buffer.from(s, "base64")) : new Uint8Array());
const proofOf = (p: string[] | null): Uint8Array[] => (p ?? []).map(b64);

function cases(kind: string): [string, Record<string, unknown>][] {
  const dir = join(VECTORS, kind);
  return files(dir).map((f) => [f.slice(dir.length + 1), JSON.parse(readFileSync(f, "utf8"))]);
}

describe("inclusion proofs", () => {
  const all = cases("inclusion");
  test("the vectors are there", () => expect(all.length).toBeGreaterThan(90));
  test.each(all)("%s", async (_, c) => {
    const run = verifyInclusion(b64(c.leafHash as string), c.leafIdx as number, c.treeSize as number, proofOf(c.proof as string[]), b64(c.root as string));
    if (c.wantErr) await expect(run).rejects.toThrow();
    else await expect(run).resolves.toBeUndefined();
  });
});

describe("consistency proofs", () => {
  const all = cases("consistency");
  test("the vectors are there", () => expect(all.length).toBeGreaterThan(90));
  test.each(all)("%s", async (_, c) => {
    const run = verifyConsistency(c.size1 as number, c.size2 as number, proofOf(c.proof as string[]), b64(c.root1 as string), b64(c.root2 as string));
    if (c.wantErr) await expect(run).rejects.toThrow();
    else await expect(run).resolves.toBeUndefined();
  });
});

test("a tree of one leaf: its root is the leaf hash, with an empty proof", async () => {
  const leaf = await leafHash(new TextEncoder().encode("entry 1"));
  await expect(verifyInclusion(leaf, 0, 1, [], leaf)).resolves.toBeUndefined();
  await expect(verifyInclusion(leaf, 1, 1, [], leaf)).rejects.toThrow(ProofError);
  await expect(verifyConsistency(1, 1, [], leaf, leaf)).resolves.toBeUndefined();
  await expect(verifyConsistency(2, 1, [], leaf, leaf)).rejects.toThrow("size 2 is not at most size 1");
});
