/**
 * Merkle proofs as RFC 9162 2.1 defines them (RFC 6962 hashing): a leaf is
 * SHA-256(0x00 || data), an inner node SHA-256(0x01 || left || right). Inclusion proofs
 * (this leaf is entry `index` of the tree of `size`) and consistency proofs (the tree of
 * `size1` is a prefix of the tree of `size2`) are checked with WebCrypto, in Node and in
 * browsers; the server and the Python client compute the same hashes.
 */

import { sha256 } from "./bytes.js";

/** A proof that does not verify, with the reason. */
export class ProofError extends Error {
  override name = "ProofError";
}

type Size = bigint | number;

/** SHA-256(0x00 || data): the hash of one leaf. */
export async function leafHash(data: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(0), data);
}

/**
 * The root that `proof` leads to from leaf `index` (its hash `leaf`) of a tree of `size`
 * (RFC 9162 2.1.3.2); throws `ProofError` if the proof cannot belong to that leaf.
 */
export async function rootFromInclusionProof(leaf: Uint8Array, index: Size, size: Size, proof: Uint8Array[]): Promise<Uint8Array> {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn < 0n || fn > sn) throw new ProofError(`leaf index ${index} is not below the tree size ${size}`);
  checkHash(leaf, "the leaf hash");
  let r = leaf;
  for (const p of proof) {
    checkHash(p, "a proof node");
    if (sn === 0n) throw new ProofError("the proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await node(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await node(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof is shorter than the tree is deep");
  return r;
}

/** Resolve if `proof` shows leaf `index` (hash `leaf`) is in the tree of `size` with `root`. */
export async function verifyInclusion(leaf: Uint8Array, index: Size, size: Size, proof: Uint8Array[], root: Uint8Array): Promise<void> {
  checkHash(root, "the root");
  const computed = await rootFromInclusionProof(leaf, index, size, proof);
  if (!equal(computed, root)) throw new ProofError(`entry ${index} is not in the tree of size ${size} with this root`);
}

/**
 * Resolve if `proof` shows the tree of `size1` (root `root1`) is a prefix of the tree of
 * `size2` (root `root2`), RFC 9162 2.1.4.2; throw `ProofError` otherwise.
 */
export async function verifyConsistency(size1: Size, size2: Size, proof: Uint8Array[], root1: Uint8Array, root2: Uint8Array): Promise<void> {
  const first = BigInt(size1);
  const second = BigInt(size2);
  if (first < 0n || second < first) throw new ProofError(`size ${size1} is not at most size ${size2}`);
  proof.forEach((p) => checkHash(p, "a proof node"));
  if (first === 0n) throw new ProofError("a consistency proof from the empty tree is meaningless");
  if (first === second) {
    if (proof.length > 0) throw new ProofError("two trees of one size need an empty proof");
    if (!equal(root1, root2)) throw new ProofError(`two different roots for size ${size1}`);
    return;
  }
  checkHash(root1, "the first root");
  checkHash(root2, "the second root");
  if (proof.length === 0) throw new ProofError("the proof is empty");
  const path = (first & (first - 1n)) === 0n ? [root1, ...proof] : proof;
  let fn = first - 1n;
  let sn = second - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError("the proof is longer than the trees are deep");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await node(c, fr);
      sr = await node(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await node(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof is shorter than the trees are deep");
  if (!equal(fr, root1)) throw new ProofError(`the proof does not lead to the root of size ${size1}`);
  if (!equal(sr, root2)) throw new ProofError(`the proof does not lead to the root of size ${size2}`);
}

function checkHash(h: Uint8Array, what: string): void {
  if (h.length !== 32) throw new ProofError(`${what} is ${h.length} bytes, not 32`);
}

async function node(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(1), left, right);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
