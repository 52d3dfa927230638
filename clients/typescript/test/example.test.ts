// The example agent (examples/agent.ts, compiled by `npm run build`, which `npm test` runs
// first) end to end against a real server: allowed, denied, reviewed with edits, unreachable.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, test } from "vitest";
import { ReviewState, type SignoffClient } from "../src/index.js";
import { createSignoffNodeClient, type SignoffNodeClient } from "../src/node.js";
import { AGENT, useServer } from "./flows.js";
import { PACKAGE_DIR } from "./server.js";

const AGENT_JS = join(PACKAGE_DIR, "dist/examples/agent.js");

const h = useServer(
  (server, token) => createSignoffNodeClient({ baseUrl: server.grpcUrl, token }),
  (client) => (client as SignoffNodeClient).close(),
);

interface Run {
  /** Resolves with the first stdout line matching `pattern`. */
  line(pattern: RegExp): Promise<string>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function runAgent(args: string[], server = h.server.grpcUrl.replace("http://", "")): Run {
  if (!existsSync(AGENT_JS)) {
    throw new Error(`${AGENT_JS} is missing: run \`npm run build\` first (\`npm test\` does)`);
  }
  const child = spawn(process.execPath, [AGENT_JS, "--server", server, ...args], {
    env: { ...process.env, SIGNOFF_TOKEN: h.server.tokens.agent, SIGNOFF_PRINCIPAL: AGENT },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    for (const w of waiters.filter((w) => w.pattern.test(line))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once("close", (code) => resolve({ code, stdout: lines.join("\n"), stderr }));
  });
  return {
    line(pattern) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return Promise.race([
        new Promise<string>((resolve) => waiters.push({ pattern, resolve })),
        done.then((r) => Promise.reject(new Error(`agent exited (${r.code}) before printing ${pattern}:\n${r.stdout}\n${r.stderr}`))),
      ]);
    },
    done,
  };
}

async function reviewLine(run: Run): Promise<string> {
  const line = await run.line(/^ {2}review \S+$/);
  return line.trim().split(/\s+/)[1]!;
}

describe("examples/agent.ts", () => {
  test("a small refund is executed at once, a huge one is denied", async () => {
    const small = await runAgent(["--amount", "120"]).done;
    expect(small.stderr).toBe("");
    expect(small.stdout).toContain("executed: refunded 120 EUR to acct_42, card ending 1111");
    expect(small.code).toBe(0);

    const huge = await runAgent(["--amount", "25000"]).done;
    expect(huge.stdout).toContain("not executed: denied by policy: Refunds above 10,000");
    expect(huge.code).toBe(1);
  });

  test("a large refund waits for a reviewer and executes their edit", async () => {
    const run = runAgent(["--amount", "750", "--timeout", "20"]);
    expect(await run.line(/^waiting for a finance reviewer/)).toContain("Refund above 500");
    const reviewer: SignoffClient = h.reviewer;
    const review = await reviewer.getReview(await reviewLine(run));
    expect(review.state).toBe(ReviewState.PENDING);
    await reviewer.modify(review, { ...review.request!.action!.params!, amount: 600 }, { comment: "partial" });
    const decided = Date.now();
    const { code, stdout, stderr } = await run.done;
    // At once, not at --timeout: nothing (a deadline timer, a connection) keeps it alive.
    expect(Date.now() - decided).toBeLessThan(5_000);
    expect(stderr).toBe("");
    expect(stdout).toContain("executed: refunded 600 EUR to acct_42, card ending 1111");
    expect(code).toBe(0);
  });

  test("a rejected refund is not executed", async () => {
    const run = runAgent(["--amount", "800", "--timeout", "20"]);
    await h.reviewer.reject(await h.reviewer.getReview(await reviewLine(run)), { comment: "duplicate" });
    const { code, stdout } = await run.done;
    expect(stdout).toMatch(/not executed: review \S+ rejected by alice: duplicate/);
    expect(code).toBe(1);
  });

  test("an unreachable server exits 3", async () => {
    const { code, stdout } = await runAgent(["--amount", "120"], "127.0.0.1:1").done;
    expect(stdout).toContain("not executed: Signoff did not answer");
    expect(code).toBe(3);
  });
});
