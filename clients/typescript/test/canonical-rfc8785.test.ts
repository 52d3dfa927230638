// The canonical encoder against independent implementations, on generated documents: npm's
// `canonicalize` (RFC 8785 by one of its authors) and the Python encoder the server runs,
// byte for byte. Plus the pre-0.2.0 number form: reviews and receipts of an older server
// still verify, for exactly their action.

import { createHash, generateKeyPairSync, sign } from "node:crypto";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import {
  actionDigest,
  actionDigests,
  canonicalJson,
  legacyCanonicalJson,
  sha256Hex,
} from "../src/canonical.js";
import { fromReview } from "../src/approval.js";
import { DecisionSchema, Outcome, ReceiptSchema } from "../src/gen/signoff/v1/common_pb.js";
import { ReviewSchema, ReviewState } from "../src/gen/signoff/v1/review_pb.js";
import { DigestMismatch, WrongAction, verifyReceipt } from "../src/index.js";
import { runPython, type PythonAnswer } from "./python.js";

// Every double, with the troublesome magnitudes drawn often: integral past 2^53 (the 0.1.x
// bug), below 1e-6 (exponent form), from 1e21, -0.
const numbers = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: 2 ** 53, max: 1e22, noNaN: true }).map(Math.floor),
  fc.double({ min: 1e-8, max: 1e-3, noNaN: true }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.constantFrom(0, -0, 2 ** 53, 2 ** 53 + 2, 2 ** 60, -(2 ** 60), 1e20, 1e21, 1e-6, 1e-7, 5e-324),
);
// Scalar values (no lone surrogates), with escapes and characters above U+FFFF drawn often.
const codePoint = fc.oneof(
  fc.integer({ min: 0, max: 0xd7ff }),
  fc.integer({ min: 0xe000, max: 0x10ffff }),
  fc.constantFrom(0x00, 0x1f, 0x7f, 0x22, 0x5c, 0x2f, 0x2028, 0xfeff, 0xfb33, 0x1f600, 0x10000),
);
const text = fc.array(codePoint, { maxLength: 10 }).map((cps) => String.fromCodePoint(...cps));
const key = fc.oneof(text, fc.constantFrom("\u{1F600}", "\uFB33", "\uE000", "a", "", "\u{10000}x"));
const scalar = fc.oneof(fc.constant(null), fc.boolean(), numbers, text);
const { doc } = fc.letrec<{ doc: JsonValue; list: JsonValue[]; object: JsonObject }>((tie) => ({
  doc: fc.oneof({ depthSize: "small" }, scalar, tie("list"), tie("object")),
  list: fc.array(tie("doc"), { maxLength: 5 }),
  object: fc.dictionary(key, tie("doc"), { maxKeys: 5, noNullPrototype: true }),
}));

/**
 * JSON text that Python reads as the same doubles: every number a float, as the server sees
 * Struct numbers (an integral one gets ".0", or json.loads would make it an int), and -0 a
 * negative zero (JSON.stringify writes it as 0).
 */
function pyText(value: JsonValue): string {
  if (typeof value === "number") {
    if (Object.is(value, -0)) return "-0.0";
    const s = JSON.stringify(value);
    return /[.e]/.test(s) ? s : `${s}.0`;
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pyText).join(",")}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${JSON.stringify(k)}:${pyText(v)}`)
    .join(",")}}`;
}

describe("against npm canonicalize", () => {
  test("generated documents encode to the same text", () => {
    fc.assert(
      fc.property(doc, (d) => {
        expect(canonicalJson(d)).toBe(canonicalize(d));
      }),
      { numRuns: 1000 },
    );
  });

  test("the numbers 0.1.x got wrong", () => {
    for (const n of [2 ** 60, -(2 ** 60), 2.9514790517935283e20, 1e21, 1e-6, 1e-7, -0]) {
      expect(canonicalJson({ n })).toBe(canonicalize({ n }));
    }
    expect(canonicalJson(2 ** 60)).toBe("1152921504606847000");
  });
});

// The same documents through Python (the server's encoder, orjson path where installed).
const SAMPLE = fc.sample(doc, { seed: 8785, numRuns: 400 });
const EXTRA: JsonValue[] = [
  { amount: 2 ** 60, currency: "EUR" },
  { amount: 2 ** 60, tiny: 1e-7 },
  { "\u{1F600}": 2 ** 60, "\uFB33": -0, a: [1e21, 2 ** 53 + 2] },
];
const DOCS = [...SAMPLE, ...EXTRA];
let python: PythonAnswer;

beforeAll(async () => {
  const texts = DOCS.map(pyText);
  python = await runPython({ canonical: texts, legacy: texts, digests: [], masking: [] });
});

describe("against Python", () => {
  test("generated documents encode to the same bytes", () => {
    DOCS.forEach((d, i) => {
      expect(python.canonical[i], pyText(d)).toEqual({ ok: canonicalJson(d) });
    });
  });

  test("the pre-0.2.0 form is the same where there is one", () => {
    DOCS.forEach((d, i) => {
      expect(python.legacy[i] ?? undefined, pyText(d)).toBe(legacyCanonicalJson(d));
    });
    expect(python.legacy.filter((t) => t !== null).length).toBeGreaterThan(0);
  });
});

// -- the pre-0.2.0 form ------------------------------------------------------------------

// What a 0.1.x server hashed for db.migrate {version: 2^60} by principal "bot", written out
// by hand: its fast path wrote 2.0**60 as the exact integer.
const OLD_TEXT =
  '{"action":"db.migrate","params":{"version":1152921504606846976},"principal":' +
  '{"attributes":{},"id":"bot","kind":"","on_behalf_of":"","roles":[],"tags":[]},' +
  '"resource":{"attributes":{},"id":"","kind":""}}';
const BIG = { version: 2 ** 60 };

describe("the pre-0.2.0 form", () => {
  test("exists only where the old fast path wrote other digits", () => {
    expect(legacyCanonicalJson({ amount: 2 ** 60 })).toBe('{"amount":1152921504606846976}');
    expect(legacyCanonicalJson({ amount: 2 ** 60, t: 1e-7 })).toBeUndefined(); // old exact path
    expect(legacyCanonicalJson({ "\u{1F600}": 2 ** 60 })).toBeUndefined();
    expect(legacyCanonicalJson({ a: 2 ** 53 + 2, b: 750, c: "x" })).toBeUndefined();
  });

  test("actionDigests offers the old digest second", async () => {
    const old = await sha256Hex(OLD_TEXT);
    expect(await actionDigests("db.migrate", BIG, { id: "bot" })).toEqual([
      await actionDigest("db.migrate", BIG, { id: "bot" }),
      old,
    ]);
    expect(await actionDigests("db.migrate", { version: 42 })).toHaveLength(1);
  });

  test("a receipt signed by a 0.1.x server verifies for exactly its action", async () => {
    const keys = generateKeyPairSync("ed25519");
    const raw = keys.publicKey.export({ type: "spki", format: "der" }).subarray(-32);
    const kid = createHash("sha256").update(raw).digest("hex").slice(0, 16);
    const payload = Buffer.from(
      canonicalJson({
        v: 1,
        type: "signoff.receipt",
        decision_id: "d1",
        review_id: "",
        action_digest: await sha256Hex(OLD_TEXT),
        redacted_paths: [],
        outcome: "AUTO_ALLOW",
        approvers: [],
        issued_at: "2026-05-01T12:00:00.000000Z",
        expires_at: "2026-05-01T12:15:00.000000Z",
        key_id: kid,
      }),
    );
    const receipt = create(ReceiptSchema, { payload, signature: sign(null, payload, keys.privateKey), keyId: kid });
    const pem = keys.publicKey.export({ type: "spki", format: "pem" }).toString();
    const now = { now: new Date("2026-05-01T12:00:00Z") };
    const v = await verifyReceipt(receipt, pem, { action: "db.migrate", params: BIG, principal: "bot" }, now);
    expect(v.actionDigest).toBe(await sha256Hex(OLD_TEXT));
    for (const other of [{ version: 2 ** 61 }, { version: 42 }]) {
      await expect(
        verifyReceipt(receipt, pem, { action: "db.migrate", params: other, principal: "bot" }, now),
      ).rejects.toBeInstanceOf(WrongAction);
    }
  });

  test("a review digested by a 0.1.x server settles for exactly its action", async () => {
    const old = await sha256Hex(OLD_TEXT);
    const review = create(ReviewSchema, {
      reviewId: "r1",
      decisionId: "d1",
      state: ReviewState.APPROVED,
      outcome: Outcome.AUTO_ALLOW,
      request: { action: { name: "db.migrate", params: BIG }, principal: { id: "bot" } },
      actionDigest: old,
      finalDigest: old,
    });
    const decision = create(DecisionSchema, { decisionId: "d1", outcome: Outcome.REQUIRE_REVIEW, reviewId: "r1" });
    expect((await fromReview("db.migrate", BIG, decision, review)).params).toEqual(BIG);
    await expect(fromReview("db.migrate", { version: 2 ** 61 }, decision, review)).rejects.toBeInstanceOf(
      DigestMismatch,
    );
  });
});
