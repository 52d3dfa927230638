// Canonical JSON, action digests and masking: byte-identical to the Python implementation
// (which the server uses) on tricky values, computed live by Python from the same inputs.

import { createHash } from "node:crypto";
import { beforeAll, describe, expect, test } from "vitest";
import type { JsonObject } from "@bufbuild/protobuf";
import { actionDigest, canonicalJson, sha256Hex } from "../src/canonical.js";
import { MASK, mask, remask, unmask } from "../src/masking.js";
import { runPython, type PythonAnswer, type PythonJob } from "./python.js";

// JSON texts: Python and JavaScript parse the same text, so the number each one reads is
// the same double (1.0 stays a float in Python, -0.0 a negative zero).
const TEXTS = [
  "null",
  "true",
  "{}",
  "[]",
  '{"b":1,"a":2,"c":{"z":[],"y":{}}}',
  // numbers: ECMAScript formatting, shortest round-trip digits, exponent thresholds
  "[1.0, -0.0, 0, 0.1, 0.30000000000000004, 4.35, 2e-3, 1e-6, 1e-7, 1.5e-7, 123e-20]",
  // (An integer literal above 2^53 that no double holds exactly, like 123456789012345678901,
  // is refused by Python, whose ints are exact, and read as the nearest double by
  // JavaScript. Struct numbers are doubles: only the double ever reaches the server.)
  "[1e20, 1e21, 1e22, 1.2345678901234568e20, 1.2345678901234568e21, 100000000000000000000]",
  "[9007199254740991, 9007199254740992, -9007199254740992, 1.7976931348623157e308, 5e-324, -5e-324]",
  "[333333333.33333329, 1E30, 4.50, 0.000000000000000000000000001, 2.9514790517935283e20, 295147905179352825856]",
  "[750, 750.0, 750.5, -750.25, 1e300, 2.5e-5, 0.00001, 0.000001]",
  // strings: minimal escaping, controls as \u00xx in lower case, nothing else escaped
  '"\\u0000\\u0001\\u001f\\"\\\\\\/\\b\\f\\n\\r\\t\\u007f\\u0080\\u2028\\u2029\\ufeff é € 😀"',
  '"\\uD83D\\uDE00 and \\ud83d\\ude00"',
  // keys: sorted by UTF-16 code units (U+1F600 sorts before U+FB33, unlike code points)
  '{"\\ud83d\\ude00":1,"\\ufb33":2,"a":3,"A":4,"é":5,"":6,"10":7,"9":8,"\\u0000":9,"aa":10,"a\\u0000":11}',
  // the example of RFC 8785, section 3.2.2
  '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
  '{"nested":{"deeper":{"deepest":[1,[2,[3,{"k":"v"}]]]}},"list":[{"b":2,"a":1},{"a":1}]}',
  // not JSON at all: both refuse
  '"\\ud800"',
  '{"k":"\\udc00x"}',
];

const DIGESTS: PythonJob["digests"] = [
  { name: "refund.issue", params: { amount: 750, currency: "EUR" } },
  { name: "refund.issue", params: {}, principal: {}, resource: {} },
  {
    name: "refund.issue",
    params: { amount: 750.5, card_number: MASK, items: [{ sku: "A-1", qty: 2 }], note: "café 😀" },
    principal: {
      id: "support-bot",
      kind: "agent",
      roles: ["agent"],
      tags: ["vip", "eu"],
      on_behalf_of: "u-1",
      attributes: { team: "support", level: 2 },
    },
    resource: { kind: "account", id: "acct_42", attributes: { tier: "vip", balance: -0.5 } },
  },
  { name: "db.migrate", params: { big: 1e21, small: 1e-7, zero: 0, neg: -1 }, resource: { id: "db-1" } },
];

const MASKING: PythonJob["masking"] = [
  {
    params: { amount: 750, card_number: "4111 1111 1111 1111" },
    edited: { amount: 500, card_number: MASK },
    paths: ["action.params.card_number"],
  },
  {
    // a reviewer who typed a new value at a redacted path: theirs stays
    params: { amount: 750, card_number: "4111" },
    edited: { amount: 750, card_number: "5555" },
    paths: ["action.params.card_number", "context.secret"],
  },
  {
    params: { cards: [{ n: "1", x: 1 }, { n: "2", x: 2 }], list: ["a", "b", "c"], nested: { a: { b: "s" } } },
    edited: { cards: [{ n: MASK, x: 3 }, { n: MASK, x: 4 }], list: ["a", MASK, "z"], nested: { a: { b: MASK } } },
    paths: ["action.params.cards.n", "action.params.list.1", "action.params.nested.a.b", "action.params.missing.x"],
  },
  {
    params: { secret: "s", n: 1 },
    edited: { redacted: MASK },
    paths: ["action.params"],
  },
];

let python: PythonAnswer;

beforeAll(async () => {
  python = await runPython({ canonical: TEXTS, digests: DIGESTS, masking: MASKING });
});

describe("canonical JSON", () => {
  test.each(TEXTS.map((text, i) => [i, text] as const))("vector %i is what Python writes: %s", (i, text) => {
    const expected = python.canonical[i]!;
    if ("ok" in expected) {
      expect(canonicalJson(JSON.parse(text))).toBe(expected.ok);
    } else {
      expect(() => canonicalJson(JSON.parse(text))).toThrow(TypeError);
    }
  });

  test("RFC 8785's own example", () => {
    const text = TEXTS[13]!;
    expect(canonicalJson(JSON.parse(text))).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  test("refuses what is not JSON", () => {
    for (const bad of [NaN, Infinity, -Infinity, undefined, () => 1, 10n, Symbol("s"), new Date(0), new Map()]) {
      expect(() => canonicalJson({ k: bad })).toThrow(TypeError);
    }
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => canonicalJson(loop)).toThrow(/circular/);
    // the same object twice is not a cycle
    const shared = { a: 1 };
    expect(canonicalJson([shared, shared])).toBe('[{"a":1},{"a":1}]');
  });
});

describe("action digest", () => {
  test.each(DIGESTS.map((d, i) => [i, d] as const))("digest %i is what Python computes", async (i, d) => {
    const p = d.principal as Record<string, unknown> | undefined;
    const principal = p && {
      id: p.id as string | undefined,
      kind: p.kind as string | undefined,
      roles: p.roles as string[] | undefined,
      tags: p.tags as string[] | undefined,
      onBehalfOf: p.on_behalf_of as string | undefined,
      attributes: p.attributes as JsonObject | undefined,
    };
    const digest = await actionDigest(d.name, d.params as JsonObject, principal, d.resource as JsonObject);
    expect(digest).toBe(python.digests[i]);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
  });

  test("sha256Hex is SHA-256 of the UTF-8 bytes", async () => {
    expect(await sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    for (const text of ["abc", "€ 😀", "\u0000", "x".repeat(100_000)]) {
      expect(await sha256Hex(text)).toBe(createHash("sha256").update(text, "utf8").digest("hex"));
    }
  });
});

describe("masking", () => {
  test.each(MASKING.map((m, i) => [i, m] as const))("case %i: mask, unmask and remask as Python does", (i, m) => {
    const expected = python.masking[i]!;
    const params = m.params as JsonObject;
    const edited = m.edited as JsonObject;
    const before = JSON.stringify(params);
    const unmasked = unmask(edited, params, m.paths);
    expect(mask(params, m.paths)).toEqual(expected.mask);
    expect(unmasked).toEqual(expected.unmask);
    expect(remask(unmasked, edited, m.paths)).toEqual(expected.remask);
    expect(JSON.stringify(params)).toBe(before); // the caller's objects are never touched
  });
});
