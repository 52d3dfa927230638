/**
 * RFC 8785 canonical JSON (JSON Canonicalization Scheme) and action digests.
 *
 * Byte-identical to the Python client's `signoff_client.canonical` (and so to the server,
 * which uses it): keys sorted by UTF-16 code units, no whitespace, strings escaped
 * minimally, numbers as ECMAScript's `Number.prototype.toString` (`1.0` -> `1`, `1e21` ->
 * `1e+21`, `-0` -> `0`). NaN, infinities, lone surrogates, `undefined` and anything that is
 * not a plain JSON value are refused with a `TypeError`, as Python refuses them with
 * `ValueError`.
 *
 * Before signoff 0.2.0 the server wrote an integral number above 2^53 as its exact integer
 * (`2 ** 60` -> `1152921504606846976`, where RFC 8785 writes `1152921504606847000`);
 * `legacyCanonicalJson` and `actionDigests` reproduce that form, so that reviews and receipts
 * of an older server still verify.
 *
 * The hash is WebCrypto's `crypto.subtle.digest("SHA-256")`, available in browsers (secure
 * contexts: https or localhost) and in Node 20, so this module imports nothing from Node.
 */

import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

/** Return the RFC 8785 canonical JSON text of `value`; throws TypeError if it is not JSON. */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  encode(value, out, new Set());
  return out.join("");
}

function encode(value: unknown, out: string[], seen: Set<object>): void {
  if (value === null) {
    out.push("null");
    return;
  }
  switch (typeof value) {
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`${value} is not a JSON number`);
      // ECMAScript's number serialization is exactly what RFC 8785 prescribes (it is
      // defined by it), and JSON.stringify(-0) is "0".
      out.push(JSON.stringify(value));
      return;
    case "string":
      checkUnicode(value);
      // JSON.stringify escapes `"`, `\` and the C0 controls (\b \f \n \r \t, else \u00xx
      // lower-case) and nothing else: RFC 8785's minimal escaping. Python's
      // json.dumps(ensure_ascii=False) writes the same.
      out.push(JSON.stringify(value));
      return;
    case "object":
      break;
    default:
      throw new TypeError(`${typeof value} is not a JSON value`);
  }
  const obj = value as object;
  if (seen.has(obj)) throw new TypeError("circular reference");
  seen.add(obj);
  if (Array.isArray(obj)) {
    out.push("[");
    for (let i = 0; i < obj.length; i++) {
      if (i) out.push(",");
      encode(obj[i], out, seen);
    }
    out.push("]");
  } else {
    if (!isPlainObject(obj)) {
      throw new TypeError(`${obj.constructor?.name ?? "object"} is not a JSON value`);
    }
    const record = obj as Record<string, unknown>;
    // The default sort compares UTF-16 code units: exactly RFC 8785's key order.
    const keys = Object.keys(record).sort();
    out.push("{");
    keys.forEach((key, i) => {
      if (i) out.push(",");
      encode(key, out, seen);
      out.push(":");
      encode(record[key], out, seen);
    });
    out.push("}");
  }
  seen.delete(obj);
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Throw TypeError if `text` holds a lone surrogate (not valid Unicode, not UTF-8-able). */
export function checkUnicode(text: string): void {
  if (LONE_SURROGATE.test(text)) {
    throw new TypeError("strings must be valid Unicode (lone surrogate)");
  }
}

/**
 * The text signoff before 0.2.0 wrote for `value`, or `undefined` where it equals
 * `canonicalJson(value)`. The old server's fast path wrote an integral number of magnitude in
 * (2^53, 1e21) as its exact integer, in a document holding nothing that sent it to the exact
 * encoder: a number below 1e-4 that is not an integer, one from 1e21 on, a key above U+FFFF.
 * Both forms name the same numbers. Same as Python's `legacy_canonical_json`.
 */
export function legacyCanonicalJson(value: unknown): string | undefined {
  const out: string[] = [];
  let differs = false;
  const walk = (v: unknown): boolean => {
    if (typeof v === "number") {
      const m = Math.abs(v);
      if (m < 1e21 && Number.isInteger(v)) {
        if (m > 2 ** 53) {
          // The exact digits of the double, as Python's int(float) gives them.
          out.push(BigInt(v).toString());
          differs ||= out[out.length - 1] !== JSON.stringify(v);
          return true;
        }
      } else if (!(m >= 1e-4 && m < 1e21)) {
        return false; // NaN, infinities, tiny or huge: the old exact path
      }
      out.push(JSON.stringify(v));
      return true;
    }
    if (v === null || typeof v !== "object") {
      encode(v, out, new Set()); // strings (lone surrogates throw), booleans; others throw
      return true;
    }
    if (Array.isArray(v)) {
      out.push("[");
      for (let i = 0; i < v.length; i++) {
        if (i) out.push(",");
        if (!walk(v[i])) return false;
      }
      out.push("]");
      return true;
    }
    if (!isPlainObject(v)) return false;
    const record = v as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    if (keys.some((k) => /[\uD800-\uDBFF][\uDC00-\uDFFF]/.test(k))) return false;
    out.push("{");
    for (let i = 0; i < keys.length; i++) {
      if (i) out.push(",");
      encode(keys[i], out, new Set());
      out.push(":");
      if (!walk(record[keys[i]!])) return false;
    }
    out.push("}");
    return true;
  };
  try {
    if (!walk(value) || !differs) return undefined;
  } catch {
    return undefined; // not JSON: no form at all
  }
  return out.join("");
}

/** Who asks, as the digest sees it: every field present, missing ones empty. */
export interface DigestPrincipal {
  id?: string;
  kind?: string;
  roles?: readonly string[];
  tags?: readonly string[];
  onBehalfOf?: string;
  attributes?: JsonObject;
}

/** What the action touches, as the digest sees it. */
export interface DigestResource {
  kind?: string;
  id?: string;
  attributes?: JsonObject;
}

/**
 * The document an action digest is computed over: `{"action", "params", "principal",
 * "resource"}` with every principal and resource field present (snake_case, as the server
 * and the Python client write it), so that both sides hash the same bytes whatever was left
 * unset.
 */
export function digestDocument(
  name: string,
  params: JsonObject | undefined,
  principal?: DigestPrincipal,
  resource?: DigestResource,
): JsonObject {
  const p = principal ?? {};
  const r = resource ?? {};
  return {
    action: name,
    params: params ?? {},
    principal: {
      id: p.id ?? "",
      kind: p.kind ?? "",
      roles: [...(p.roles ?? [])],
      tags: [...(p.tags ?? [])],
      on_behalf_of: p.onBehalfOf ?? "",
      attributes: p.attributes ?? {},
    },
    resource: { kind: r.kind ?? "", id: r.id ?? "", attributes: r.attributes ?? {} },
  };
}

/**
 * Hex SHA-256 of the canonical JSON of an action: what a reviewer approves. Same document
 * and bytes as Python's `action_digest(name, params, principal, resource)`.
 */
export async function actionDigest(
  name: string,
  params: JsonObject | undefined,
  principal?: DigestPrincipal,
  resource?: DigestResource,
): Promise<string> {
  return sha256Hex(canonicalJson(digestDocument(name, params, principal, resource)));
}

/**
 * The digests a server may have computed for this action: today's, then (only for an action
 * holding an integral number above 2^53) the one a server before 0.2.0 computed. Check a
 * digest a review or receipt carries with `includes`. Same as Python's `action_digests`.
 */
export async function actionDigests(
  name: string,
  params: JsonObject | undefined,
  principal?: DigestPrincipal,
  resource?: DigestResource,
): Promise<string[]> {
  const doc = digestDocument(name, params, principal, resource);
  const digests = [await sha256Hex(canonicalJson(doc))];
  const legacy = legacyCanonicalJson(doc);
  if (legacy !== undefined) digests.push(await sha256Hex(legacy));
  return digests;
}

/** Hex SHA-256 of the UTF-8 bytes of `text`, with WebCrypto. */
export async function sha256Hex(text: string): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new Error(
      "WebCrypto (crypto.subtle) is not available: browsers offer it only in secure " +
        "contexts (https or localhost); Node needs version 20 or later",
    );
  }
  const hash = await subtle.digest("SHA-256", new TextEncoder().encode(text));
  let hex = "";
  for (const byte of new Uint8Array(hash)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

export type { JsonObject, JsonValue };
