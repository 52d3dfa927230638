// RESOURCE_EXHAUSTED with RetryInfo from a real server's rate limit, over both transports:
// the client waits the server's delay when it fits the call's timeout, else throws
// ResourceExhausted with `retryAfterMs`.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Outcome, ResourceExhausted, type SignoffClient } from "../src/index.js";
import { createSignoffNodeClient, type SignoffNodeClient } from "../src/node.js";
import { createSignoffWebClient } from "../src/web.js";
import { request } from "./flows.js";
import { startServer, type Server } from "./server.js";

let server: Server;
beforeAll(async () => {
  // One call at once per identity, then one every 250 ms.
  server = await startServer({ SIGNOFF_LIMITS__RATE__RATE: "4", SIGNOFF_LIMITS__RATE__BURST: "1" });
});
afterAll(async () => {
  await server?.stop();
});

const TRANSPORTS: [string, (s: Server) => SignoffClient][] = [
  ["gRPC", (s) => createSignoffNodeClient({ baseUrl: s.grpcUrl, token: s.tokens.agent })],
  ["Connect", (s) => createSignoffWebClient({ baseUrl: s.httpUrl, token: s.tokens.agent })],
];

describe.each(TRANSPORTS)("rate limited over %s", (_name, make) => {
  test("the client waits the server's delay when it fits the timeout", async () => {
    const client = make(server);
    try {
      await client.evaluate(request(10));
      const started = Date.now();
      const second = await client.evaluate(request(10), { timeoutMs: 5000 });
      const waited = Date.now() - started;
      expect(second.outcome).toBe(Outcome.AUTO_ALLOW);
      expect(waited).toBeGreaterThan(100); // it was refused first, and waited
      expect(waited).toBeLessThan(2000);
    } finally {
      (client as Partial<SignoffNodeClient>).close?.();
    }
  });

  test("a delay beyond the timeout is thrown at once as ResourceExhausted.retryAfterMs", async () => {
    const client = make(server);
    try {
      await client.evaluate(request(10), { timeoutMs: 5000 });
      const started = Date.now();
      const error = await client.evaluate(request(10), { timeoutMs: 100 }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(error).toBeInstanceOf(ResourceExhausted);
      const exhausted = error as ResourceExhausted;
      expect(exhausted.retryAfterMs).toBeGreaterThan(100);
      expect(exhausted.retryAfterMs).toBeLessThanOrEqual(250);
      expect(exhausted.message).toContain("retry in");
      expect(exhausted.message).toContain("of the timeout were left");
    } finally {
      (client as Partial<SignoffNodeClient>).close?.();
    }
  });
});
