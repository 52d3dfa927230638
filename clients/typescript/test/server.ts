/**
 * A real `signoff serve` for the tests: free ports, a temporary SQLite database, the
 * example policies and a tokens file (real authentication, not dev mode).
 *
 * The executable is $SIGNOFF_BIN, else <repo>/.venv/bin/signoff, else
 * <repo>/.venv-ci/bin/signoff, else `signoff` on PATH.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants, existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PACKAGE_DIR = resolve(REPO, "clients/typescript");

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where `signoff` is; throws with what was tried when it is nowhere. */
export function signoffBin(): string {
  const tried: string[] = [];
  const fromEnv = process.env.SIGNOFF_BIN;
  if (fromEnv) {
    if (executable(fromEnv)) return fromEnv;
    throw new Error(`SIGNOFF_BIN=${fromEnv} is not an executable file`);
  }
  for (const venv of [".venv", ".venv-ci"]) {
    const path = join(REPO, venv, "bin", "signoff");
    if (executable(path)) return path;
    tried.push(path);
  }
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const path = join(dir, "signoff");
    if (dir && executable(path)) return path;
  }
  tried.push("signoff on PATH");
  throw new Error(
    `the tests need the Signoff server (\`signoff\`) and found none; tried ${tried.join(", ")}. ` +
      "Create the repository's virtualenv (`make .venv/bin/.installed`, which `make run` and " +
      "`make test` do first) or set SIGNOFF_BIN to the executable.",
  );
}

/** A Python that can run the repository's pure-Python modules: the server's own, if any. */
export function pythonBin(): string {
  const beside = join(dirname(signoffBin()), "python");
  return existsSync(beside) ? beside : "python3";
}

/** Who the tokens file knows: identity -> roles. */
export const IDENTITIES = {
  agent: { identity: "support-bot", roles: ["agent"] },
  reviewer: { identity: "alice", roles: ["reviewer:finance", "reviewer:finance-leads"] },
} as const;

export type Who = keyof typeof IDENTITIES;

export interface Server {
  /** http://127.0.0.1:PORT of the gRPC port. */
  grpcUrl: string;
  /** http://127.0.0.1:PORT of the HTTP (Connect) port. */
  httpUrl: string;
  /** A valid token per identity. */
  tokens: Record<Who, string>;
  /** The server's log lines so far (JSON objects). */
  logs: Record<string, unknown>[];
  /** Stop the server (SIGTERM, or SIGKILL with `crash`) and start it again on the same
   * ports and database. */
  restart(options?: { crash?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

const STARTUP_MS = 30_000;

/** Start `signoff serve` (with `settings`: extra SIGNOFF_* variables) and resolve once it
 * logs `server.started`. */
export async function startServer(settings: Record<string, string> = {}): Promise<Server> {
  const bin = signoffBin();
  const dir = await mkdtemp(join(tmpdir(), "signoff-ts-"));
  const tokens = {} as Record<Who, string>;
  const entries: string[] = [];
  for (const [who, { identity, roles }] of Object.entries(IDENTITIES) as [Who, (typeof IDENTITIES)[Who]][]) {
    const token = randomBytes(24).toString("base64url");
    tokens[who] = token;
    const sha = createHash("sha256").update(token).digest("hex");
    entries.push(`  - sha256: ${sha}\n    identity: ${identity}\n    roles: ${JSON.stringify(roles)}\n`);
  }
  const tokensFile = join(dir, "tokens.yaml");
  await writeFile(tokensFile, `tokens:\n${entries.join("")}`);

  // Only what this test says: no SIGNOFF_* setting of the developer's shell leaks in.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SIGNOFF_")) env[k] = v;
  env.SIGNOFF_AUTH__TOKENS_FILE = tokensFile;
  env.SIGNOFF_AUDIT__CREATE_KEY = "true";
  // The signing key goes with the database into the temporary directory, never into the
  // developer's own state directory (~/.local/state/signoff).
  env.SIGNOFF_STATE_DIR = join(dir, "state");
  // On SIGTERM the gRPC port lets open calls run this long; a WatchReview on a pending review
  // never ends by itself, so a stop with one open would take the default 10 s.
  env.SIGNOFF_SHUTDOWN_GRACE = "1";
  Object.assign(env, settings);

  const logs: Record<string, unknown>[] = [];
  let proc: Proc;
  try {
    proc = await spawnServer(bin, dir, env, "127.0.0.1:0", "127.0.0.1:0", logs);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const server: Server = {
    grpcUrl: `http://${proc.listen}`,
    httpUrl: `http://${proc.http}`,
    tokens,
    logs,
    async restart({ crash = false } = {}) {
      await proc.stop(crash);
      // The same ports and database: clients reconnect to the same address.
      proc = await spawnServer(bin, dir, env, proc.listen, proc.http, logs);
    },
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

interface Proc {
  listen: string;
  http: string;
  stop(crash?: boolean): Promise<void>;
}

/** Run `signoff serve` on `dir`'s database; resolve once it logs `server.started`. */
async function spawnServer(
  bin: string,
  dir: string,
  env: NodeJS.ProcessEnv,
  listen: string,
  http: string,
  logs: Record<string, unknown>[],
): Promise<Proc> {
  const child = spawn(
    bin,
    [
      "serve",
      "--listen", listen,
      "--http-listen", http,
      "--db", `sqlite:///${join(dir, "signoff.db")}`,
      "--policies", join(REPO, "policies"),
      "--log-format", "json",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const text: string[] = [];
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));

  const started = new Promise<Record<string, unknown>>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`signoff serve did not start in ${STARTUP_MS} ms:\n${text.join("\n")}`)), STARTUP_MS);
    const onLine = (line: string): void => {
      text.push(line);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // a traceback or a warning of some library: kept in `text`
      }
      logs.push(entry);
      if (entry.event === "server.started") {
        clearTimeout(timer);
        ok(entry);
      }
    };
    for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream! }).on("line", onLine);
    child.once("error", (err) => {
      clearTimeout(timer);
      fail(new Error(`could not run ${bin}: ${err.message}`));
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`signoff serve exited with ${code} before it started:\n${text.join("\n")}`));
    });
  });

  try {
    const entry = await started;
    return {
      listen: String(entry.listen),
      http: String(entry.http),
      stop: (crash = false) => kill(child, exited, crash),
    };
  } catch (err) {
    await kill(child, exited);
    throw err;
  }
}

/** SIGTERM once (a graceful drain), SIGKILL if it is still there after 10 s; or SIGKILL. */
async function kill(child: ChildProcess, exited: Promise<number | null>, crash = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(crash ? "SIGKILL" : "SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((done) => {
    timer = setTimeout(() => done("late"), 10_000);
  });
  if ((await Promise.race([exited, late])) === "late") {
    child.kill("SIGKILL");
    await exited;
  }
  clearTimeout(timer);
}
