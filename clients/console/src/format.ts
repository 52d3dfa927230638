// Text for times, durations, states and JSON values.
import type { JsonValue } from "@bufbuild/protobuf";
import { type Duration, type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { Outcome, RuleDecision } from "../../typescript/src/gen/signoff/v1/common_pb.js";
import { ReviewState, Verdict } from "../../typescript/src/gen/signoff/v1/review_pb.js";

/** "3d 4h", "2h 5m", "4m 10s", "12s": the two largest units. */
export function span(msLeft: number): string {
  const s = Math.max(0, Math.floor(msLeft / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function durationMs(d: Duration | undefined): number {
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0;
}

/** "2026-01-01 12:00:05 UTC": absolute times are UTC, as in the audit log and the CLI. */
export function stamp(ts: Timestamp | undefined): string {
  if (!ts) return "-";
  return stampMs(timestampMs(ts));
}

export function stampMs(value: number): string {
  return new Date(value).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function iso(ts: Timestamp | undefined): string | undefined {
  return ts ? new Date(timestampMs(ts)).toISOString() : undefined;
}

const STATE: Record<ReviewState, string> = {
  [ReviewState.UNSPECIFIED]: "unknown",
  [ReviewState.PENDING]: "pending",
  [ReviewState.APPROVED]: "approved",
  [ReviewState.MODIFIED]: "approved with edits",
  [ReviewState.REJECTED]: "rejected",
  [ReviewState.EXPIRED]: "expired",
  [ReviewState.CANCELLED]: "cancelled",
};

export function stateText(s: ReviewState): string {
  return STATE[s] ?? "unknown";
}

const VERDICT: Record<Verdict, string> = {
  [Verdict.UNSPECIFIED]: "?",
  [Verdict.APPROVE]: "approved",
  [Verdict.MODIFY]: "approved with edits",
  [Verdict.REJECT]: "rejected",
};

export function verdictText(v: Verdict): string {
  return VERDICT[v] ?? "?";
}

// Where a review act came from (ReviewAct.channel); the API's own ("") is not shown.
const CHANNEL: Record<string, string> = { slack: "from Slack", email: "from an e-mail link" };

export function channelText(channel: string): string {
  return CHANNEL[channel] ?? "";
}

const RULE: Record<RuleDecision, string> = {
  [RuleDecision.UNSPECIFIED]: "?",
  [RuleDecision.ALLOW]: "allow",
  [RuleDecision.REVIEW]: "review",
  [RuleDecision.DENY]: "deny",
};

export function ruleText(d: RuleDecision): string {
  return RULE[d] ?? "?";
}

const OUTCOME: Record<Outcome, string> = {
  [Outcome.UNSPECIFIED]: "",
  [Outcome.AUTO_ALLOW]: "auto-allow",
  [Outcome.REQUIRE_REVIEW]: "require review",
  [Outcome.DENY]: "deny",
};

export function outcomeText(o: Outcome): string {
  return OUTCOME[o] ?? "";
}

/** A JSON value on one line, strings without quotes when they are the whole value. */
export function scalar(v: JsonValue | undefined): string {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** A JSON value as it would be typed: strings quoted. */
export function literal(v: JsonValue | undefined): string {
  return v === undefined ? "(absent)" : JSON.stringify(v);
}

export function short(id: string): string {
  return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

export const MASK = "[REDACTED]";

/** Whether a leaf path ("card_number", "cards[0].number") of the object at `prefix`
 * ("action.params") is one of the policy's redacted paths. */
export function isRedacted(prefix: string, path: string, redacted: readonly string[]): boolean {
  const dotted = path.replace(/\[\d+\]/g, "").replace(/\["([^"]*)"\]/g, ".$1");
  const full = dotted ? `${prefix}.${dotted}` : prefix;
  return redacted.some((r) => full === r || full.startsWith(`${r}.`));
}
