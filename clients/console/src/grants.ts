// A standing approval being drafted on a review: what the form edits, the GrantSpec it sends,
// and the scope in the server's words (signoff.core.grants.Scope.describe), shown while editing.
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type GrantBound,
  GrantBoundSchema,
  type GrantOffer,
  type GrantSpec,
  GrantSpecSchema,
} from "../../typescript/src/gen/signoff/v1/review_pb.js";

export type Op = "<=" | ">=" | "==";
// "json": a list or a map, bound as a whole with == (typed as JSON).
export type Kind = "number" | "string" | "boolean" | "null" | "json";

/** One bound as typed: the text is parsed by the kind of the requested value. */
export type DraftBound = { path: string; op: Op; kind: Kind; text: string };

export type Draft = {
  ttl: string; // a preset's seconds, or "custom"
  custom: string; // "90m", "12h", "2d" when ttl is "custom"
  uses: string;
  anyPrincipal: boolean;
  bounds: DraftBound[];
};

export const PRESETS: [number, string][] = [
  [3600, "1 hour"],
  [8 * 3600, "8 hours"],
  [24 * 3600, "24 hours"],
  [7 * 24 * 3600, "7 days"],
];

/** The presets the server accepts (at most its grants.max_ttl). */
export function presets(offer: GrantOffer): [number, string][] {
  return PRESETS.filter(([s]) => s <= Number(offer.maxTtlSeconds));
}

export function draftFrom(offer: GrantOffer): Draft {
  const first = presets(offer)[0];
  return {
    ttl: first ? String(first[0]) : "custom",
    custom: first ? "" : `${Math.floor(Number(offer.maxTtlSeconds) / 60)}m`,
    uses: "10",
    anyPrincipal: false,
    bounds: offer.defaultBounds.map(fromBound),
  };
}

function fromBound(b: GrantBound): DraftBound {
  const v = b.value ? toJson(ValueSchema, b.value) : null;
  const kind: Kind =
    typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : v === null ? "null" : typeof v === "object" ? "json" : "string";
  return { path: b.path, op: (b.op as Op) || "==", kind, text: kind === "string" ? String(v) : JSON.stringify(v) };
}

/** The bound's value, or an error saying why the text is not one. */
export function boundValue(b: DraftBound): { ok: true; value: JsonValue } | { ok: false; error: string } {
  if (b.kind === "null") return { ok: true, value: null };
  if (b.kind === "string") return { ok: true, value: b.text };
  if (b.kind === "boolean") return { ok: true, value: b.text === "true" };
  if (b.kind === "json") {
    try {
      return { ok: true, value: JSON.parse(b.text) as JsonValue };
    } catch {
      return { ok: false, error: `${b.path}: "${b.text}" is not JSON` };
    }
  }
  const n = Number(b.text.trim());
  if (!b.text.trim() || !Number.isFinite(n)) return { ok: false, error: `${b.path}: "${b.text}" is not a number` };
  return { ok: true, value: n };
}

/** "90m", "12h", "2d", "1h30m" as seconds; undefined if not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (!/^(\d+\s*[smhd]\s*)+$/.test(t)) return undefined;
  const size: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
  let total = 0;
  for (const [, n, unit] of t.matchAll(/(\d+)\s*([smhd])/g)) total += Number(n) * size[unit];
  return total || undefined;
}

export function ttlSeconds(d: Draft): number | undefined {
  return d.ttl === "custom" ? parseDuration(d.custom) : Number(d.ttl);
}

/** What is wrong with the draft before sending it ("" if nothing): the server checks again. */
export function problem(d: Draft, offer: GrantOffer): string {
  const ttl = ttlSeconds(d);
  const max = Number(offer.maxTtlSeconds);
  if (ttl === undefined) return `Duration "${d.custom}" is not one: write e.g. 90m, 12h or 2d.`;
  if (ttl > max) return `Duration: at most ${forText(max).replace("for ", "")} (the server's grants.max_ttl).`;
  const uses = Number(d.uses);
  if (!Number.isInteger(uses) || uses < 1 || uses > offer.maxUses) return `Max uses: a whole number from 1 to ${offer.maxUses}.`;
  for (const b of d.bounds) {
    const v = boundValue(b);
    if (!v.ok) return `Bound ${v.error}.`;
  }
  return "";
}

export function toSpec(d: Draft): GrantSpec {
  return create(GrantSpecSchema, {
    ttlSeconds: BigInt(ttlSeconds(d) ?? 0),
    maxUses: Number(d.uses),
    anyPrincipal: d.anyPrincipal,
    bounds: d.bounds.map((b) => {
      const v = boundValue(b);
      return create(GrantBoundSchema, { path: b.path, op: b.op, value: fromJson(ValueSchema, v.ok ? v.value : null) });
    }),
  });
}

/** A JSON value as the server writes it in a bound (Python's json.dumps, sort_keys, ASCII). */
export function show(v: JsonValue): string {
  if (v === null || typeof v !== "object") {
    const text = JSON.stringify(v);
    return typeof v === "string" ? text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) : text;
  }
  if (Array.isArray(v)) return `[${v.map(show).join(", ")}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${show(k)}: ${show(v[k] as JsonValue)}`).join(", ")}}`;
}

/** The scope in plain words, exactly as the server's Grant.description. */
export function describeScope(action: string, principal: string, bounds: { path: string; op: string; value: JsonValue }[]): string {
  const who = principal ? `principal ${principal}` : "any principal";
  const where = bounds.map((b) => `${b.path} ${b.op} ${show(b.value)}`).join(", ") || "any params";
  return `${action} by ${who} where ${where}`;
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

/** "for 8 hours", "for 7 days", "for 90 minutes". */
export function forText(seconds: number): string {
  if (seconds % 86400 === 0) return `for ${plural(seconds / 86400, "day")}`;
  if (seconds % 3600 === 0) return `for ${plural(seconds / 3600, "hour")}`;
  if (seconds % 60 === 0) return `for ${plural(seconds / 60, "minute")}`;
  return `for ${plural(seconds, "second")}`;
}

export function usesText(n: number): string {
  return n === 1 ? "at most once" : `at most ${n} times`;
}

/** The whole grant in words, or "" while the draft has a problem. */
export function preview(d: Draft, offer: GrantOffer, action: string, principal: string): string {
  if (problem(d, offer)) return "";
  const bounds = d.bounds.map((b) => {
    const v = boundValue(b);
    return { path: b.path, op: b.op, value: v.ok ? v.value : null };
  });
  const scope = describeScope(action, d.anyPrincipal ? "" : principal, bounds);
  return `${scope}, ${forText(ttlSeconds(d) ?? 0)}, ${usesText(Number(d.uses))}`;
}
