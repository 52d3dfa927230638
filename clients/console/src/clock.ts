// Time as the server sees it. Queue snapshots carry `server_time`; "time left" is computed
// from it plus the time elapsed here since, so a wrong browser clock (or a server on a test
// clock) does not make a review look expired or fresh.
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";

let offsetMs = 0;

export function syncServerTime(serverTime: Timestamp | undefined): void {
  if (serverTime) offsetMs = timestampMs(serverTime) - Date.now();
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
