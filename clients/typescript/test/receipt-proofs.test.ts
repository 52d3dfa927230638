// verifyReceiptProof and verifyCosignatures on receipt proofs the server's own code built
// (tests/unit/data/receipt_proof_fixture.json, kept fresh by
// tests/unit/test_receipt_proof_fixture.py, which also checks that Python accepts it): an
// AUTO_ALLOW decision's version 2 receipt and an approved review's version 1 receipt, each
// proven into a checkpoint two witnesses co-signed. Each lie a proof can tell is refused:
// the fixture's `binding_lies` (entries a lying server could log, each off in one field)
// with the same message Python gives.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  BadSignature,
  COSIGNATURE_TYPE,
  CosignatureSchema,
  ProofError,
  ReceiptError,
  ReceiptProofSchema,
  WrongAction,
  cosignatureBytes,
  verifyCheckpoint,
  verifyCosignatures,
  verifyReceiptProof,
  type ActionInput,
  type ReceiptProof,
  type ReceiptProofOptions,
} from "../src/index.js";

type Named = { seq: number; receipt_proof_b64: string };
type Lie = { receipt: Name; seq: number; field: string | null; pattern: string; leaf_b64: string; proof_b64: string[] };
type Name = "decision" | "review" | "rejected";
const fixture = JSON.parse(
  readFileSync(join(__dirname, "..", "..", "..", "tests", "unit", "data", "receipt_proof_fixture.json"), "utf8"),
) as {
  log_public_key_raw_b64: string;
  witness_public_keys_raw_b64: string[];
  witness_key_ids: string[];
  decision_action: ActionInput;
  review_action: ActionInput;
  proofs: Record<Name, Named>;
  binding_lies: Lie[];
  cosignature_bytes: {
    log_key_id: string;
    tree_size: number;
    root_hash: string;
    time_seconds: number;
    time_nanos: number;
    key_id: string;
    bytes_b64: string;
  };
};

const b64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const KEY = b64(fixture.log_public_key_raw_b64);
const WITNESSES = fixture.witness_public_keys_raw_b64.map(b64);
const bytesOf = (name: Name) => b64(fixture.proofs[name].receipt_proof_b64);
const proofOf = (name: Name): ReceiptProof => fromBinary(ReceiptProofSchema, bytesOf(name));
const strong = { witnessKeys: WITNESSES, quorum: 2 };

async function freshKey(): Promise<Uint8Array> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  return new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
}

describe("the server's proofs verify", () => {
  test.each([
    ["decision", "decision", "AUTO_ALLOW"],
    ["review", "review.approved", "APPROVED"],
  ] as const)("the %s's receipt, two witnesses of two", async (name, type, outcome) => {
    const want = fixture.proofs[name];
    for (const proof of [bytesOf(name), proofOf(name)]) {
      const logged = await verifyReceiptProof(proof, KEY, { ...strong, action: fixture[`${name}_action`] });
      expect(logged.seq).toBe(BigInt(want.seq));
      expect(logged.witnesses).toEqual(fixture.witness_key_ids);
      expect(logged.witnesses).toHaveLength(2);
      expect(logged.entry.type).toBe(type);
      expect(logged.entry.seq).toBe(want.seq);
      expect(logged.entry.decision_id).toBe(logged.receipt.decisionId);
      expect(logged.receipt.outcome).toBe(outcome);
      expect(logged.treeSize).toBe(13n);
      expect(logged.rootHash).toBe(fixture.cosignature_bytes.root_hash);
      expect(logged.entry.hash).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  test("quorum 0 accepts a checkpoint with no co-signature; the default quorum 1 does not", async () => {
    const bare = proofOf("decision");
    bare.checkpoint!.cosignatures = [];
    expect((await verifyReceiptProof(bare, KEY, { quorum: 0 })).witnesses).toEqual([]);
    await expect(verifyReceiptProof(bare, KEY, { witnessKeys: WITNESSES })).rejects.toThrow(
      /carries 0 valid co-signature\(s\) of the given witnesses \(0 in all\), 1 needed/,
    );
  });

  test("one witness's key gives one witness", async () => {
    const logged = await verifyReceiptProof(bytesOf("review"), KEY, { witnessKeys: WITNESSES.slice(1), quorum: 1 });
    expect(logged.witnesses).toHaveLength(1);
    expect(fixture.witness_key_ids).toContain(logged.witnesses[0]);
  });
});

describe("each lie is refused", () => {
  async function refused(proof: ReceiptProof | Uint8Array, pattern: RegExp, options: ReceiptProofOptions = strong): Promise<void> {
    const err = await verifyReceiptProof(proof, KEY, options).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProofError);
    expect((err as Error).message).toMatch(pattern);
  }

  test("a quorum the witnesses do not reach", async () => {
    await refused(bytesOf("decision"), /carries 2 valid co-signature\(s\).*\(2 in all\), 3 needed/, { ...strong, quorum: 3 });
  });

  test("an unknown witness key", async () => {
    await refused(bytesOf("decision"), /carries 0 valid co-signature\(s\).*, 2 needed/, {
      witnessKeys: [await freshKey()],
      quorum: 2,
    });
    await refused(bytesOf("decision"), /carries 1 valid co-signature\(s\).*, 2 needed/, {
      witnessKeys: [WITNESSES[0]!, await freshKey()],
      quorum: 2,
    });
  });

  test("a zeroed path hash", async () => {
    const p = proofOf("decision");
    p.proof[0] = new Uint8Array(32);
    await refused(p, /^entry seq 2: entry 1 is not in the tree of size 13 with this root$/);
  });

  test("another leaf_index", async () => {
    const p = proofOf("decision");
    p.leafIndex += 1n;
    await refused(p, /^the leaf is not the entry at seq 3$/);
  });

  test("a leaf edited", async () => {
    const p = proofOf("decision");
    const text = new TextDecoder().decode(p.leaf);
    expect(text).toContain('"outcome":"AUTO_ALLOW"');
    p.leaf = new TextEncoder().encode(text.replace('"outcome":"AUTO_ALLOW"', '"outcome":"DENY"'));
    await refused(p, /^entry seq 2: .*not in the tree/);
  });

  test("the review's entry and path under the decision's receipt", async () => {
    const p = proofOf("decision");
    const review = proofOf("review");
    p.leaf = review.leaf;
    p.leafIndex = review.leafIndex;
    p.proof = review.proof;
    await refused(p, /^entry seq 5 is not this receipt's allow: decision_id is "dec-2", the receipt says "dec-1"$/);
    // and the decision's entry under the review's receipt
    const q = proofOf("review");
    const decision = proofOf("decision");
    q.leaf = decision.leaf;
    q.leafIndex = decision.leafIndex;
    q.proof = decision.proof;
    await refused(q, /^entry seq 2 is not this receipt's allow: decision_id is "dec-1", the receipt says "dec-2"$/);
  });

  test.each(fixture.binding_lies.map((lie) => [`${lie.receipt} receipt, entry ${lie.seq}`, lie] as const))(
    "an entry that is not the receipt's allow: %s",
    async (_, lie) => {
      const p = proofOf(lie.receipt);
      p.leaf = b64(lie.leaf_b64);
      p.leafIndex = BigInt(lie.seq - 1);
      p.proof = lie.proof_b64.map(b64);
      await refused(p, new RegExp(lie.pattern));
      if (lie.field !== null) expect(lie.pattern).toContain(`allow: ${lie.field.replace(".", "\\.")} is `);
    },
  );

  test("the lies cover every field the binding checks", () => {
    expect(new Set(fixture.binding_lies.map((l) => `${l.receipt}:${l.field}`))).toEqual(
      new Set([
        "decision:decision_id",
        "decision:type",
        "decision:outcome",
        "decision:review_id",
        "review:decision_id",
        "review:payload.final_digest",
        "review:type",
        "review:review_id",
        "review:review_state",
        "rejected:null",
      ]),
    );
  });

  test("a checkpoint root altered", async () => {
    const p = proofOf("decision");
    p.checkpoint!.rootHash = "ab".repeat(32);
    await refused(p, /^checkpoint at seq 13: the signature does not verify$/);
  });

  test("a checkpoint signed by another key than the one named", async () => {
    await refused(bytesOf("decision"), /^checkpoint at seq 13 is signed by key "[0-9a-f]{16}", not this key$/, {
      ...strong,
      checkpointKey: await freshKey(),
    });
  });

  test("a forged receipt payload", async () => {
    const p = proofOf("decision");
    const payload = new TextDecoder().decode(p.receipt!.payload);
    expect(payload).toContain('"decision_id":"dec-1"');
    p.receipt!.payload = new TextEncoder().encode(payload.replace('"dec-1"', '"dec-2"'));
    const err = await verifyReceiptProof(p, KEY, strong).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReceiptError);
    expect(err).toBeInstanceOf(BadSignature);
  });

  test("a receipt for another action, when the action is given", async () => {
    const err = await verifyReceiptProof(bytesOf("decision"), KEY, { ...strong, action: fixture.review_action }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WrongAction);
  });

  test("garbage bytes", async () => {
    await refused(new TextEncoder().encode("\xff\xff not a proof"), /^the bytes are not a serialized ReceiptProof$/);
    await refused(Uint8Array.of(0xff, 0xff, 0x20, 0x6e), /^the bytes are not a serialized ReceiptProof$/);
  });

  test("a negative quorum is a caller's mistake", async () => {
    await expect(verifyReceiptProof(bytesOf("decision"), KEY, { quorum: -1 })).rejects.toThrow(RangeError);
  });

  test("the untouched proofs still verify after all that", async () => {
    for (const name of ["decision", "review"] as const) {
      expect((await verifyReceiptProof(bytesOf(name), KEY, strong)).seq).toBe(BigInt(fixture.proofs[name].seq));
    }
  });
});

describe("verifyCosignatures", () => {
  const checkpoint = async () => {
    const cp = proofOf("review").checkpoint!;
    await verifyCheckpoint(cp, KEY);
    return cp;
  };

  test("a witness's valid signature of another head counts for nothing", async () => {
    const cp = await checkpoint();
    const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const kid = Buffer.from(await crypto.subtle.digest("SHA-256", raw)).toString("hex").slice(0, 16);
    const time = { seconds: 1_775_000_000n, nanos: 5_000 };
    const signed = async (treeSize: bigint, rootHash: string) => {
      const data = cosignatureBytes(cp.keyId, treeSize, rootHash, create(CosignatureSchema, { time }).time!, kid);
      const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, data));
      return create(CosignatureSchema, {
        logKeyId: cp.keyId,
        treeSize,
        rootHash,
        time,
        keyId: kid,
        signature: Buffer.from(signature).toString("base64"),
      });
    };
    cp.cosignatures = [await signed(cp.treeSize, "cd".repeat(32)), await signed(cp.treeSize - 1n, cp.rootHash)];
    await expect(verifyCosignatures(cp, [raw], 1)).rejects.toThrow(/carries 0 valid co-signature\(s\) .*\(2 in all\), 1 needed/);
    cp.cosignatures.push(await signed(cp.treeSize, cp.rootHash)); // the same witness, this head
    expect(await verifyCosignatures(cp, [raw], 1)).toEqual([kid]);
  });

  test("a bad signature, one not strictly base64, or a repeat counts for nothing", async () => {
    const cp = await checkpoint();
    expect(await verifyCosignatures(cp, WITNESSES, 2)).toEqual(fixture.witness_key_ids);
    const [first, second] = cp.cosignatures;
    const otherHead = clone(CosignatureSchema, first!);
    otherHead.rootHash = "cd".repeat(32);
    const badSignature = clone(CosignatureSchema, second!);
    badSignature.signature = first!.signature;
    const notBase64 = clone(CosignatureSchema, second!);
    notBase64.signature = second!.signature.replace(/=+$/, "");
    for (const lone of [otherHead, badSignature, notBase64]) {
      const one = clone(ReceiptProofSchema, proofOf("review")).checkpoint!;
      one.cosignatures = [lone];
      await expect(verifyCosignatures(one, WITNESSES, 1)).rejects.toThrow(/carries 0 valid co-signature\(s\)/);
    }
    cp.cosignatures = [first!, clone(CosignatureSchema, first!)];
    await expect(verifyCosignatures(cp, WITNESSES, 2)).rejects.toThrow(/carries 1 valid co-signature\(s\) .*\(2 in all\), 2 needed/);
  });

  test("the co-signature bytes are Python's", () => {
    const c = fixture.cosignature_bytes;
    const time = create(CosignatureSchema, { time: { seconds: BigInt(c.time_seconds), nanos: c.time_nanos } }).time!;
    const got = cosignatureBytes(c.log_key_id, BigInt(c.tree_size), c.root_hash, time, c.key_id);
    expect(Buffer.from(got).toString("base64")).toBe(c.bytes_b64);
    expect(new TextDecoder().decode(got)).toContain(`"type":"${COSIGNATURE_TYPE}"`);
    expect(c.time_nanos % 1_000_000).not.toBe(0); // microseconds a Date could not carry
    // A Date carries milliseconds only: the same bytes when the time has no more.
    const ms = new Date(c.time_seconds * 1000 + 250);
    expect(new TextDecoder().decode(cosignatureBytes(c.log_key_id, c.tree_size, c.root_hash, ms, c.key_id))).toContain(
      '.250000Z"',
    );
  });

  test.each([
    ["log_key_id", ["ABCDEF0123456789", 6, "ab".repeat(32), "0123456789abcdef"]],
    ["key_id", ["0123456789abcdef", 6, "ab".repeat(32), "0123"]],
    ["tree_size", ["0123456789abcdef", -1, "ab".repeat(32), "0123456789abcdef"]],
    ["tree_size", ["0123456789abcdef", 1.5, "ab".repeat(32), "0123456789abcdef"]],
    ["root_hash", ["0123456789abcdef", 6, "AB".repeat(32), "0123456789abcdef"]],
  ] as const)("a malformed %s is named", (field, [log, size, root, kid]) => {
    expect(() => cosignatureBytes(log, size, root, new Date(0), kid)).toThrow(new RegExp(`^${field} `));
    expect(() => cosignatureBytes(log, size, root, new Date(0), kid)).toThrow(RangeError);
  });
});

test("a proof survives a round trip through its bytes", () => {
  const p = proofOf("decision");
  expect(toBinary(ReceiptProofSchema, p)).toEqual(bytesOf("decision"));
});
