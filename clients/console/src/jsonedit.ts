// The params editor's JSON: a strict parser that says where it stopped (line and column, the
// same in every browser, unlike JSON.parse's messages), and a path-by-path diff.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

export type Parsed =
  | { ok: true; value: JsonObject }
  | { ok: false; message: string; line: number; column: number };

class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 64;

/** Parse `text` as a JSON object (params are a google.protobuf.Struct). */
export function parseParams(text: string): Parsed {
  let i = 0;
  const fail = (message: string, at = i): never => {
    throw new JsonSyntaxError(message, at);
  };
  const describe = (at: number) =>
    at >= text.length ? "the end of the text" : `'${text[at]}'`;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    let out = "";
    for (;;) {
      if (i >= text.length) fail("unterminated string", start);
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c === "\\") {
        const e = text[i + 1];
        const simple: Record<string, string> = {
          '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t",
        };
        if (e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          fail("invalid escape in a string");
        }
      } else if (c < " ") {
        fail(c === "\n" ? "line break inside a string (write \\n)" : "control character in a string");
      } else {
        out += c;
        i++;
      }
    }
  };
  const num = (): number => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail(`unexpected ${describe(i)}: expected a value`);
    i += m![0].length;
    const n = Number(m![0]);
    if (!Number.isFinite(n)) fail("number out of range", i - m![0].length);
    return n;
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") return obj(depth + 1);
    if (c === "[") {
      i++;
      const out: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return out;
        }
        fail(`unexpected ${describe(i)}: expected ',' or ']' after an array item`);
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    if (c === "'") fail("strings need double quotes");
    return num();
  };
  const obj = (depth: number): JsonObject => {
    i++; // {
    const out: JsonObject = {};
    ws();
    if (text[i] === "}") {
      i++;
      return out;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') {
        fail(
          text[i] === "}"
            ? "trailing comma before '}'"
            : `unexpected ${describe(i)}: expected a property name in double quotes`,
        );
      }
      const keyAt = i;
      const key = str();
      if (Object.prototype.hasOwnProperty.call(out, key)) fail(`duplicate key "${key}"`, keyAt);
      ws();
      if (text[i] !== ":") fail(`unexpected ${describe(i)}: expected ':' after the name "${key}"`);
      i++;
      out[key] = value(depth);
      ws();
      if (text[i] === ",") {
        i++;
        ws();
        if (text[i] === "}") fail("trailing comma before '}'");
        continue;
      }
      if (text[i] === "}") {
        i++;
        return out;
      }
      fail(`unexpected ${describe(i)}: expected ',' or '}' after the value of "${key}"`);
    }
  };
  try {
    ws();
    if (text[i] !== "{") {
      fail(i >= text.length ? "empty: params are a JSON object, e.g. {}" : "params must be a JSON object ({...})");
    }
    const result = obj(0);
    ws();
    if (i < text.length) fail(`unexpected ${describe(i)} after the closing '}'`);
    return { ok: true, value: result };
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    const before = text.slice(0, err.at);
    const line = before.split("\n").length;
    const column = err.at - before.lastIndexOf("\n");
    return { ok: false, message: err.message, line, column };
  }
}

export interface Change {
  path: string;
  kind: "changed" | "added" | "removed";
  before?: JsonValue;
  after?: JsonValue;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  if (IDENT.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** What differs between `before` and `after`, leaf by leaf (arrays of equal length item by
 * item, otherwise as a whole), in the order of the keys. */
export function diff(before: JsonValue | undefined, after: JsonValue | undefined, path = ""): Change[] {
  if (isObject(before) && isObject(after)) {
    const out: Change[] = [];
    const keys = [...Object.keys(before), ...Object.keys(after).filter((k) => !(k in before))].sort();
    for (const k of keys) {
      const p = joinPath(path, k);
      if (!(k in after)) out.push({ path: p, kind: "removed", before: before[k] });
      else if (!(k in before)) out.push({ path: p, kind: "added", after: after[k] });
      else out.push(...diff(before[k], after[k], p));
    }
    return out;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    return before.flatMap((b, n) => diff(b, after[n], joinPath(path, n)));
  }
  if (same(before, after)) return [];
  return [{ path: path || "(params)", kind: "changed", before, after }];
}

export function same(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/** JSON with sorted keys, two-space indented: the editor's starting text. */
export function pretty(v: JsonValue): string {
  return JSON.stringify(canonical(v), null, 2);
}

function canonical(v: JsonValue | undefined): JsonValue | undefined {
  if (Array.isArray(v)) return v.map((x) => canonical(x) as JsonValue);
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const k of Object.keys(v).sort()) out[k] = canonical(v[k]) as JsonValue;
    return out;
  }
  return v;
}

/** Leaves of a JSON object as (path, value), for a params table. */
export function leaves(v: JsonValue | undefined, path = ""): [string, JsonValue][] {
  if (isObject(v) && Object.keys(v).length) {
    return Object.keys(v)
      .sort()
      .flatMap((k) => leaves(v[k], joinPath(path, k)));
  }
  if (Array.isArray(v) && v.length && v.some((x) => typeof x === "object" && x !== null)) {
    return v.flatMap((x, n) => leaves(x, joinPath(path, n)));
  }
  return [[path || "(params)", v ?? null]];
}
