// Time as the server sees it. Queue snapshots carry `server_time`; "time left" is computed
// from it plus the time elapsed here since, so a wrong browser clock (or a server on a test
// clock) does not make a review look expired or fresh.
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";

let offsetMs = 0;
let synced = false;
const waiting: Array<() => void> = [];

export function syncServerTime(serverTime: Timestamp | undefined): void {
  if (!serverTime) return;
  offsetMs = timestampMs(serverTime) - Date.now();
  synced = true;
  for (const wake of waiting.splice(0)) wake();
}

/** Resolves once a queue snapshot has told the server's time, or after `ms` (then the
 * browser's clock stands in): a window computed before that would use the browser's. */
export function serverTimeKnown(ms = 5000): Promise<void> {
  if (synced) return Promise.resolve();
  return new Promise((resolve) => {
    waiting.push(resolve);
    setTimeout(resolve, ms);
  });
}

export function serverNow(): number {
  return Date.now() + offsetMs;
}

/** Re-render every `ms` (for ticking durations). */
export function useTick(ms = 1000): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setN((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  return n;
}

export function ms(ts: Timestamp | undefined): number | undefined {
  return ts ? timestampMs(ts) : undefined;
}
