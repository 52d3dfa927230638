/**
 * When to retry a call and how long to wait; the rules of the Python client's `_retry`:
 *
 * - UNAVAILABLE and DEADLINE_EXCEEDED are retried. The server promises that
 *   UNAVAILABLE means nothing was decided or stored, and every Evaluate carries a
 *   request_id, so a retry that reaches a server which did decide replays that decision;
 * - a call has one overall deadline; each attempt gets what is left of it;
 * - the wait before retry n (0-based) is drawn from [d/2, d] with d = min(cap, base * 2^n);
 * - RESOURCE_EXHAUSTED is retried only when the server sent RetryInfo (a rate limit, all
 *   slots busy), after that delay plus up to 10%, if it fits the deadline (client.ts).
 */

import { Code } from "@connectrpc/connect";

export const RETRYABLE: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded]);

export interface RetryPolicy {
  retries: number;
  baseMs: number;
  capMs: number;
}

export const DEFAULT_POLICY: RetryPolicy = { retries: 3, baseMs: 100, capMs: 2000 };

/** The wait before retry number `retry` (0-based), for `jitter` in [0, 1]. */
export function backoffMs(policy: RetryPolicy, retry: number, jitter = Math.random()): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** retry);
  return ceiling * (0.5 + 0.5 * jitter);
}

/** Resolve after `ms`, or reject with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
