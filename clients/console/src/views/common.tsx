import type { JsonValue } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ComponentChildren } from "preact";
import { ReviewState } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { ms, serverNow, useTick } from "../clock";
import { isRedacted, MASK, span, stamp, stampMs, stateText } from "../format";
import { leaves } from "../jsonedit";

export type Urgency = "overdue" | "urgent" | "soon" | "ok";

export function urgency(leftMs: number, timeoutMs: number): Urgency {
  if (leftMs <= 0) return "overdue";
  if (leftMs < 15 * 60_000 || (timeoutMs && leftMs < timeoutMs * 0.1)) return "urgent";
  if (leftMs < 60 * 60_000 || (timeoutMs && leftMs < timeoutMs * 0.25)) return "soon";
  return "ok";
}

const URGENCY_LABEL: Record<Urgency, string> = {
  overdue: "Overdue",
  urgent: "Urgent",
  soon: "Soon",
  ok: "",
};

/** "2h 5m left", ticking every second against the server's clock, with an urgency cue that
 * does not rely on colour alone (a word and an icon). */
export function TimeLeft(props: { expires?: Timestamp; timeoutMs: number; onTimeout?: string }) {
  useTick(1000);
  const at = ms(props.expires);
  if (at === undefined) return <span class="muted">no deadline</span>;
  const left = at - serverNow();
  const u = urgency(left, props.timeoutMs);
  const then = props.onTimeout ? `, then ${props.onTimeout}` : "";
  return (
    <span class={`time-left u-${u}`} title={`expires ${stampMs(at)}${then}`}>
      {u !== "ok" && (
        <span class="u-label">
          <span aria-hidden="true">{u === "soon" ? "◔ " : "● "}</span>
          {URGENCY_LABEL[u]}
        </span>
      )}
      <span class="u-time">{left > 0 ? `${span(left)} left` : "expired, resolving"}</span>
    </span>
  );
}

/** "waited 4m 10s", ticking. */
export function Age(props: { since?: Timestamp }) {
  useTick(1000);
  const at = ms(props.since);
  if (at === undefined) return <span>-</span>;
  return <time dateTime={new Date(at).toISOString()} title={stamp(props.since)}>{span(serverNow() - at)}</time>;
}

export function StateBadge(props: { state: ReviewState }) {
  const cls = {
    [ReviewState.PENDING]: "pending",
    [ReviewState.APPROVED]: "ok",
    [ReviewState.MODIFIED]: "ok",
    [ReviewState.REJECTED]: "bad",
    [ReviewState.EXPIRED]: "bad",
    [ReviewState.CANCELLED]: "muted",
    [ReviewState.UNSPECIFIED]: "muted",
  }[props.state];
  return <span class={`badge badge-${cls}`}>{stateText(props.state)}</span>;
}

export function Value(props: { value: JsonValue | undefined; redacted?: boolean }) {
  if (props.redacted) {
    return (
      <span class="redacted" title="Masked by the policy's redact list: reviewers never see it">
        <span aria-hidden="true">▒▒▒ </span>redacted
      </span>
    );
  }
  const v = props.value;
  if (v === null || v === undefined) return <code class="json-null">null</code>;
  if (typeof v === "string") return <code class="json-string">{JSON.stringify(v)}</code>;
  if (typeof v === "object") return <code class="json-object">{JSON.stringify(v)}</code>;
  return <code class="json-scalar">{String(v)}</code>;
}

/** A JSON object as a path → value table; values at redacted paths say so. */
export function KeyValues(props: {
  value: JsonValue | undefined;
  prefix: string;
  redacted: readonly string[];
  caption?: string;
  empty?: string;
}) {
  const rows = leaves(props.value ?? {});
  if (rows.length === 1 && rows[0][0] === "(params)" && isEmpty(rows[0][1])) {
    return <p class="muted">{props.empty ?? "none"}</p>;
  }
  return (
    <table class="kv">
      {props.caption && <caption class="sr-only">{props.caption}</caption>}
      <tbody>
        {rows.map(([path, v]) => (
          <tr key={path}>
            <th scope="row">
              <code>{path}</code>
            </th>
            <td>
              <Value
                value={v}
                redacted={v === MASK && isRedacted(props.prefix, path, props.redacted)}
              />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function isEmpty(v: JsonValue): boolean {
  return v === null || (typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length);
}

export function Kbd(props: { children: ComponentChildren }) {
  return <kbd aria-hidden="true">{props.children}</kbd>;
}

export function Notice(props: {
  kind: "error" | "warning" | "info" | "success";
  children: ComponentChildren;
  alert?: boolean;
  id?: string;
}) {
  return (
    <div id={props.id} class={`notice notice-${props.kind}`} role={props.alert ? "alert" : "status"}>
      {props.children}
    </div>
  );
}
