// The package as consumers see it: browser entries free of Node, the exports map, and the
// small pure helpers that need no server.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, test } from "vitest";
import {
  Code,
  InvalidArgument,
  SignoffError,
  Unauthenticated,
  fromError,
  newRequestId,
  toActionRequest,
} from "../src/index.js";
import { ConnectError } from "@connectrpc/connect";
import { PACKAGE_DIR } from "./server.js";

/** Every module specifier `entry` imports, transitively within src/. */
function importGraph(entry: string, seen = new Set<string>(), external = new Set<string>()): Set<string> {
  if (seen.has(entry)) return external;
  seen.add(entry);
  // Without comments: their examples import things too.
  const text = readFileSync(entry, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  for (const [, spec] of text.matchAll(/(?:import|export)[^"']*?from\s*["']([^"']+)["']/g)) {
    if (spec!.startsWith(".")) {
      importGraph(resolve(dirname(entry), spec!.replace(/\.js$/, ".ts")), seen, external);
    } else {
      external.add(spec!);
    }
  }
  return external;
}

describe("browser safety", () => {
  test.each(["index.ts", "web.ts"])("src/%s imports nothing of Node", (entry) => {
    const external = [...importGraph(join(PACKAGE_DIR, "src", entry))];
    expect(external.length).toBeGreaterThan(0);
    const nodeOnly = external.filter((s) => s.startsWith("node:") || s === "@connectrpc/connect-node");
    expect(nodeOnly).toEqual([]);
    const allowed = ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web"];
    expect(external.filter((s) => !allowed.some((a) => s === a || s.startsWith(`${a}/`)))).toEqual([]);
  });

  test("the exports map has a browser-safe root, /node and /web, each with types", () => {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, "package.json"), "utf8")) as {
      exports: Record<string, Record<string, string> | string>;
    };
    for (const entry of [".", "./node", "./web"]) {
      const e = pkg.exports[entry] as Record<string, string>;
      const name = entry === "." ? "index" : entry.slice(2);
      expect(e).toEqual({ source: `./src/${name}.ts`, types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` });
    }
  });
});

describe("requests", () => {
  test("request ids are UUIDs, also without crypto.randomUUID (plain-http pages)", () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(newRequestId()).toMatch(uuid);
    // randomUUID lives on Crypto.prototype: an own property hides it, deleting it restores it.
    Object.defineProperty(globalThis.crypto, "randomUUID", { value: undefined, configurable: true });
    try {
      const ids = new Set(Array.from({ length: 100 }, newRequestId));
      expect(ids.size).toBe(100);
      for (const id of ids) expect(id).toMatch(uuid);
    } finally {
      delete (globalThis.crypto as { randomUUID?: unknown }).randomUUID;
    }
    expect(newRequestId()).toMatch(uuid);
  });

  test("a principal string is its id; unknown keys are refused with their path", () => {
    const req = toActionRequest({ action: "a.b", principal: "bot", requestId: "r1" });
    expect(req.principal?.id).toBe("bot");
    expect(req.requestId).toBe("r1");
    expect(req.action?.params).toBeUndefined(); // unset stays unset
    const bad = (input: unknown): unknown => {
      try {
        toActionRequest(input as never);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    expect((bad({ action: "a", params: { x: 1 }, princpal: "x" }) as InvalidArgument).message).toMatch(/unknown key "princpal"/);
    expect((bad({ action: "a", principal: { id: "x", role: [] } }) as InvalidArgument).field).toBe("principal");
    expect((bad({ action: "a", principal: { id: "x", roles: "admin" } }) as InvalidArgument).field).toBe("principal.roles");
    expect((bad({ action: 7 }) as InvalidArgument).field).toBe("action.name");
    expect((bad({ action: "a", params: [] }) as InvalidArgument).field).toBe("action.params");
    expect((bad({ action: "a", context: { a: { b: undefined } } }) as InvalidArgument).field).toBe("context.a.b");
  });
});

describe("errors", () => {
  test("status codes map to typed errors; the ConnectError is the cause", () => {
    const cause = new ConnectError("bad token", Code.Unauthenticated);
    const err = fromError(cause);
    expect(err).toBeInstanceOf(Unauthenticated);
    expect(err.message).toBe("bad token");
    expect(err.cause).toBe(cause);
    expect(err.name).toBe("Unauthenticated");

    const invalid = fromError(new ConnectError("requests[2].action.params: too big", Code.InvalidArgument));
    expect(invalid).toBeInstanceOf(InvalidArgument);
    expect((invalid as InvalidArgument).field).toBe("requests[2].action.params");

    const internal = fromError(new ConnectError("boom", Code.Internal));
    expect(internal.constructor).toBe(SignoffError);
    expect(internal.code).toBe(Code.Internal);
  });
});
