/**
 * Redacted params on the client side: mask them as the server does, and unmask edits.
 * A port of the Python client's `_masking`; the rules must stay identical.
 *
 * The server masks a policy's `redact` paths ("action.params.card_number") in the request it
 * stores and shows to reviewers, and computes review digests over that masked view. So the
 * client must (1) mask its own params exactly the same way to recompute a digest, and (2)
 * put the agent's real values back where a reviewer's edited params still hold the mask.
 *
 * Path rules: segments after `action.params` walk the params; a numeric segment indexes a
 * list, any other segment applies to every element of a list; the value at the end of the
 * path, whatever it is, becomes the string "[REDACTED]"; `action.params` itself masks the
 * whole map as {"redacted": "[REDACTED]"}. Paths that do not exist are ignored. Paths
 * outside `action.params` do not concern params.
 */

import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

export const MASK = "[REDACTED]";
const WHOLE_KEY = "redacted";

type Pick = (value: JsonValue | undefined, other: JsonValue | undefined) => JsonValue | undefined;

function whole(): JsonObject {
  return { [WHOLE_KEY]: MASK };
}

function paramPaths(paths: Iterable<string>): string[][] {
  const out: string[][] = [];
  for (const path of paths) {
    const segments = path.split(".");
    if (segments[0] === "action" && segments[1] === "params") out.push(segments.slice(2));
  }
  return out;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const has = (obj: object, key: string): boolean => Object.prototype.hasOwnProperty.call(obj, key);

/** Deep copy into plain objects and arrays, so that masking never touches the caller's. */
function plain<T extends JsonValue | undefined>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => plain(v)) as T;
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out as T;
  }
  return value;
}

function isIndex(segment: string): boolean {
  return /^[0-9]+$/.test(segment);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => has(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Return a copy of `params` masked at the redacted `paths`, as the server masks them. */
export function mask(params: JsonObject | undefined, paths: Iterable<string>): JsonObject {
  let out: JsonObject = params !== undefined ? plain(params) : {};
  for (const segments of paramPaths(paths)) {
    if (segments.length === 0) {
      // The server masks the whole Struct only when it was sent at all.
      out = params !== undefined ? whole() : {};
    } else {
      maskIn(out, segments);
    }
  }
  return out;
}

function maskIn(container: JsonObject, segments: string[]): void {
  const [key, ...rest] = segments as [string, ...string[]];
  if (has(container, key)) container[key] = maskValue(container[key] as JsonValue, rest);
}

function maskValue(value: JsonValue, segments: string[]): JsonValue {
  if (segments.length === 0) return MASK;
  if (isObject(value)) {
    maskIn(value, segments);
  } else if (Array.isArray(value)) {
    const head = segments[0] as string;
    if (isIndex(head)) {
      const i = Number(head);
      if (i < value.length) value[i] = maskValue(value[i] as JsonValue, segments.slice(1));
    } else {
      for (let i = 0; i < value.length; i++) value[i] = maskValue(value[i] as JsonValue, segments);
    }
  }
  return value;
}

/**
 * Return `edited` with every mask left at a redacted path replaced by the original value.
 * A reviewer never saw the real values at redacted paths, so a mask still there means
 * "keep what the agent asked for". A value the reviewer typed in stays.
 */
export function unmask(
  edited: JsonObject,
  original: JsonObject | undefined,
  paths: Iterable<string>,
): JsonObject {
  if (original === undefined) return plain(edited);
  return merge(edited, original, paths, (e, o) => (e === MASK ? plain(o) : e));
}

/**
 * Return `execute` with the mask put back wherever `edited` holds it: the inverse of
 * `unmask`. For params that `unmask` produced this gives `edited` back.
 */
export function remask(execute: JsonObject, edited: JsonObject, paths: Iterable<string>): JsonObject {
  return merge(execute, edited, paths, (x, e) => (e === MASK ? MASK : x));
}

function merge(target: JsonObject, other: JsonObject, paths: Iterable<string>, pick: Pick): JsonObject {
  let out: JsonObject = plain(target);
  for (const segments of paramPaths(paths)) {
    if (segments.length === 0) {
      // The whole map is masked as {"redacted": MASK}: treat that as one masked value.
      const picked = pick(leaf(out), leaf(other));
      out = picked === MASK ? whole() : (plain(picked) as JsonObject);
    } else {
      mergeIn(out, other, segments, pick);
    }
  }
  return out;
}

function leaf(params: JsonObject): JsonValue {
  return deepEqual(params, whole()) ? MASK : params;
}

function mergeIn(container: JsonObject, other: JsonValue | undefined, segments: string[], pick: Pick): void {
  const [key, ...rest] = segments as [string, ...string[]];
  if (has(container, key) && isObject(other) && has(other, key)) {
    container[key] = mergeValue(container[key] as JsonValue, other[key], rest, pick) as JsonValue;
  }
}

function mergeValue(
  value: JsonValue,
  other: JsonValue | undefined,
  segments: string[],
  pick: Pick,
): JsonValue | undefined {
  if (segments.length === 0) return pick(value, other);
  if (isObject(value)) {
    mergeIn(value, other, segments, pick);
  } else if (Array.isArray(value) && Array.isArray(other)) {
    const head = segments[0] as string;
    if (isIndex(head)) {
      const i = Number(head);
      if (i < value.length && i < other.length) {
        value[i] = mergeValue(value[i] as JsonValue, other[i], segments.slice(1), pick) as JsonValue;
      }
    } else {
      for (let i = 0; i < Math.min(value.length, other.length); i++) {
        value[i] = mergeValue(value[i] as JsonValue, other[i], segments, pick) as JsonValue;
      }
    }
  }
  return value;
}
