// Whether the live streams reach the server, and streams that reconnect with backoff.
import { asConnectError, Code, type ConnectError, isTransient } from "./api";
import { Store } from "./store";

/** Names of the streams currently failing to reach the server. */
export const failing = new Store<ReadonlySet<string>>(new Set());
/** Set when the server refused the token mid-session (revoked, expired). */
export const sessionEnded = new Store<string>("");

function mark(name: string, down: boolean): void {
  failing.update((s) => {
    if (s.has(name) === down) return s;
    const next = new Set(s);
    if (down) next.add(name);
    else next.delete(name);
    return next;
  });
}

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 4000;

export interface StreamHandlers<T> {
  /** Each message, in order. */
  message(value: T): void;
  /** A final error (permission, not found...): the stream is not retried. */
  fatal?(err: ConnectError): void;
  /** The stream ended by itself (WatchReview after a final state). */
  end?(): void;
}

/**
 * Keep a server stream open: on a transient failure, reconnect after a growing, jittered
 * pause (250 ms doubling up to 4 s), and report the stream as failing meanwhile. A stream
 * that ends by itself is reopened unless `endIsFinal`. Returns a function that stops it.
 */
export function keepStreaming<T>(
  name: string,
  open: (signal: AbortSignal) => AsyncIterable<T>,
  handlers: StreamHandlers<T>,
  endIsFinal = false,
): () => void {
  const abort = new AbortController();
  let delay = FIRST_DELAY_MS;
  const run = async () => {
    while (!abort.signal.aborted) {
      try {
        for await (const value of open(abort.signal)) {
          delay = FIRST_DELAY_MS;
          mark(name, false);
          handlers.message(value);
        }
        if (abort.signal.aborted) return;
        if (endIsFinal) {
          mark(name, false);
          handlers.end?.();
          return;
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        const e = asConnectError(err);
        if (e.code === Code.Unauthenticated) {
          mark(name, false);
          sessionEnded.set(e.rawMessage || "the server no longer accepts this token");
          return;
        }
        if (!isTransient(e)) {
          mark(name, false);
          handlers.fatal?.(e);
          return;
        }
        mark(name, true);
      }
      const jittered = delay * (0.8 + Math.random() * 0.4);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, jittered);
        abort.signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };
  void run();
  return () => {
    abort.abort();
    mark(name, false);
  };
}
