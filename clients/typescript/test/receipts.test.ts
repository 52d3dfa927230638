// Signed receipts from a real `signoff serve`, verified offline with verifyReceipt; and
// upgraded with GetReceiptProof, verified offline with verifyReceiptProof.

import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadSignature,
  DEFAULT_LEEWAY_MS,
  MalformedReceipt,
  Outcome,
  ProofError,
  ReceiptExpired,
  ReceiptNotYetValid,
  ReceiptProofSchema,
  ReceiptSchema,
  ReviewState,
  UnknownKey,
  WrongAction,
  verifyReceipt,
  verifyReceiptProof,
  type ActionInput,
  type Receipt,
  type ReceiptProof,
} from "../src/index.js";
import { createSignoffNodeClient, type SignoffNodeClient } from "../src/node.js";
import { AGENT, REVIEWER, WAIT_MS, refund } from "./flows.js";
import { startServer, type Server } from "./server.js";

let server: Server;
let agent: SignoffNodeClient;
let reviewer: SignoffNodeClient;
let keyDir: string;
const keys = generateKeyPairSync("ed25519");
const publicPem = keys.publicKey.export({ type: "spki", format: "pem" }).toString();

const action = (amount: number): ActionInput => ({
  action: "refund.issue",
  params: refund(amount),
  principal: AGENT,
  resource: { kind: "account", id: "acct_42" },
});

beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), "signoff-ts-key-"));
  const keyFile = join(keyDir, "key.pem");
  await writeFile(keyFile, keys.privateKey.export({ type: "pkcs8", format: "pem" }));
  // A checkpoint every entry (the server checks each second): receipt proofs need one.
  server = await startServer({ SIGNOFF_AUDIT__SIGNING_KEY: keyFile, SIGNOFF_AUDIT__CHECKPOINT_EVERY: "1" });
  agent = createSignoffNodeClient({ baseUrl: server.grpcUrl, token: server.tokens.agent });
  reviewer = createSignoffNodeClient({ baseUrl: server.grpcUrl, token: server.tokens.reviewer });
});

afterAll(async () => {
  agent?.close();
  reviewer?.close();
  await server?.stop();
  await rm(keyDir, { recursive: true, force: true });
});

describe("auto-allow", () => {
  test("carries a receipt that verifies with the server's key, as PEM, raw bytes or bytes", async () => {
    const decision = await agent.evaluate(action(120));
    expect(decision.outcome).toBe(Outcome.AUTO_ALLOW);
    const v = await verifyReceipt(decision, publicPem, action(120));
    expect(v.decisionId).toBe(decision.decisionId);
    expect(v.outcome).toBe("AUTO_ALLOW");
    expect(v.approvers).toEqual([]);
    expect(v.expiresAt.getTime() - v.issuedAt.getTime()).toBe(15 * 60_000);
    const raw = keys.publicKey.export({ type: "spki", format: "der" }).subarray(-32);
    const bytes = toBinary(ReceiptSchema, decision.receipt!);
    expect((await verifyReceipt(bytes, new Uint8Array(raw), action(120))).actionDigest).toBe(v.actionDigest);
  });

  test("refuses another action, flipped bytes, another key and expiry", async () => {
    const decision = await agent.evaluate(action(130));
    const receipt = decision.receipt!;
    await expect(verifyReceipt(receipt, publicPem, action(131))).rejects.toBeInstanceOf(WrongAction);
    await expect(verifyReceipt(receipt, publicPem, { ...action(130), principal: "other" })).rejects.toBeInstanceOf(
      WrongAction,
    );
    for (const field of ["payload", "signature"] as const) {
      const flipped = new Uint8Array(receipt[field]);
      flipped[flipped.length >> 1]! ^= 1;
      const tampered = create(ReceiptSchema, { ...receipt, [field]: flipped });
      await expect(verifyReceipt(tampered, publicPem, action(130))).rejects.toBeInstanceOf(BadSignature);
    }
    const other = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    await expect(verifyReceipt(receipt, other, action(130))).rejects.toBeInstanceOf(UnknownKey);
    const v = await verifyReceipt(receipt, publicPem, action(130));
    const late = new Date(v.expiresAt.getTime() + DEFAULT_LEEWAY_MS + 1);
    await expect(verifyReceipt(receipt, publicPem, action(130), { now: late })).rejects.toBeInstanceOf(ReceiptExpired);
    const early = new Date(v.issuedAt.getTime() - 5 * 60_000);
    await expect(verifyReceipt(receipt, publicPem, action(130), { now: early })).rejects.toBeInstanceOf(
      ReceiptNotYetValid,
    );
  });

  test("is a version 2 receipt: a leaf of its write batch's tree, the root signed", async () => {
    const decision = await agent.evaluate(action(121));
    const receipt = decision.receipt!;
    expect(JSON.parse(new TextDecoder().decode(receipt.payload)).v).toBe(2);
    expect(receipt.treeSize).toBeGreaterThanOrEqual(1n);
    expect(receipt.leafIndex).toBeLessThan(receipt.treeSize);
    expect((await verifyReceipt(receipt, publicPem, action(121))).decisionId).toBe(decision.decisionId);
  });

  test("an EvaluateBatch's receipts share one signature, each for its own action only", async () => {
    const amounts = [140, 141, 142, 143, 144];
    const decisions = await agent.evaluateBatch(amounts.map(action));
    const rs = decisions.map((d) => d.receipt!);
    // The batch's decisions reach the server's writer before it takes a batch: one tree.
    expect(new Set(rs.map((r) => Buffer.from(r.signature).toString("hex"))).size).toBe(1);
    expect(rs.map((r) => r.leafIndex).sort()).toEqual([0n, 1n, 2n, 3n, 4n]);
    for (const [i, r] of rs.entries()) {
      expect(r.treeSize).toBe(5n);
      expect((await verifyReceipt(r, publicPem, action(amounts[i]!))).decisionId).toBe(decisions[i]!.decisionId);
      await expect(verifyReceipt(r, publicPem, action(amounts[(i + 1) % 5]!))).rejects.toBeInstanceOf(WrongAction);
    }
    const [r0, r1] = [rs.find((r) => r.leafIndex === 0n)!, rs.find((r) => r.leafIndex === 1n)!];
    const a0 = action(amounts[rs.indexOf(r0)]!);
    const swaps = [
      { payload: r1.payload }, // another leaf's statement on this path
      { path: r1.path }, // another leaf's path
      { leafIndex: 1n },
      { leafIndex: 4n },
      { leafIndex: 9n },
      { treeSize: 4n }, // a path that also fits a tree of another size
      { treeSize: 6n },
      { path: r0.path.slice(0, -1) },
      { path: [...r0.path, r1.path[0]!] },
      { path: [new Uint8Array(32), ...r0.path.slice(1)] },
    ];
    for (const change of swaps) {
      const bad = create(ReceiptSchema, { ...r0, ...change });
      await expect(verifyReceipt(bad, publicPem, a0)).rejects.toBeInstanceOf(BadSignature);
    }
    // Tree fields cleared: read as version 1, the signature is not over the payload.
    const flat = create(ReceiptSchema, { ...r0, leafIndex: 0n, treeSize: 0n, path: [] });
    await expect(verifyReceipt(flat, publicPem, a0)).rejects.toBeInstanceOf(BadSignature);
    const noSize = create(ReceiptSchema, { ...r0, treeSize: 0n });
    await expect(verifyReceipt(noSize, publicPem, a0)).rejects.toBeInstanceOf(MalformedReceipt);
  });

  test("a denied decision has none", async () => {
    const decision = await agent.evaluate(action(25_000));
    expect(decision.outcome).toBe(Outcome.DENY);
    expect(decision.receipt).toBeUndefined();
    await expect(verifyReceipt(decision, publicPem, action(25_000))).rejects.toBeInstanceOf(MalformedReceipt);
  });
});

describe("reviews", () => {
  // Review receipts are version 1 (signed one by one, when read): both versions verify.
  test("a modified review's receipt is for the edited action only", async () => {
    const decision = await agent.evaluate(action(750));
    expect(decision.outcome).toBe(Outcome.REQUIRE_REVIEW);
    expect(decision.receipt).toBeUndefined();
    const pending = await reviewer.getReview(decision.reviewId);
    expect(pending.receipt).toBeUndefined();
    await reviewer.modify(pending, { ...pending.request!.action!.params!, amount: 600 });
    const review = await reviewer.getReview(decision.reviewId);
    expect(review.state).toBe(ReviewState.MODIFIED);
    const v = await verifyReceipt(review, publicPem, action(600));
    expect(v.outcome).toBe("MODIFIED");
    expect(v.approvers).toEqual([REVIEWER]);
    expect(v.actionDigest).toBe(review.finalDigest);
    await expect(verifyReceipt(review, publicPem, action(750))).rejects.toBeInstanceOf(WrongAction);
  }, WAIT_MS);
});

describe("receipt proofs", () => {
  // This server has no witnesses: the upgrade asks for a checkpoint none co-signed, and the
  // proof rests on the server's key alone (quorum 0).
  async function upgraded(receipt: Receipt): Promise<ReceiptProof> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        return await agent.audit.getReceiptProof({ receipt, unwitnessed: true });
      } catch (err) {
        // No checkpoint covers the entry yet: the next one is a second away.
        const early = err instanceof ConnectError && err.code === Code.FailedPrecondition;
        if (!early || Date.now() > deadline) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  test("a decision's and a modified review's receipts verify, with the log's entries of their allow", async () => {
    const decision = await agent.evaluate(action(122));
    const pending = await agent.evaluate(action(760));
    const review = await reviewer.getReview(pending.reviewId);
    await reviewer.modify(review, { ...review.request!.action!.params!, amount: 610 });
    const modified = await reviewer.getReview(pending.reviewId);
    for (const [receipt, act, type] of [
      [decision.receipt!, action(122), "decision"],
      [modified.receipt!, action(610), "review.modified"],
    ] as const) {
      const proof = await upgraded(receipt);
      expect(proof.checkpoint!.cosignatures).toEqual([]);
      const logged = await verifyReceiptProof(proof, publicPem, { quorum: 0, action: act });
      expect(logged.entry.type).toBe(type);
      expect(logged.entry.decision_id).toBe(logged.receipt.decisionId);
      expect(logged.seq).toBe(proof.leafIndex + 1n);
      expect(logged.treeSize).toBeGreaterThanOrEqual(logged.seq);
      expect(logged.witnesses).toEqual([]);
      await expect(verifyReceiptProof(proof, publicPem, { action: act })).rejects.toThrow(/0 valid .* 1 needed/);
      await expect(verifyReceiptProof(proof, publicPem, { quorum: 0, action: action(1) })).rejects.toBeInstanceOf(
        WrongAction,
      );
      const moved = create(ReceiptProofSchema, { ...proof, leafIndex: proof.leafIndex + 1n });
      await expect(verifyReceiptProof(moved, publicPem, { quorum: 0 })).rejects.toBeInstanceOf(ProofError);
    }
  }, WAIT_MS);
});
