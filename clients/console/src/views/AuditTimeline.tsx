// The audit page's timeline of one action (AuditPage.tsx has the search and the results).
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { useEffect, useRef, useState } from "preact/hooks";
import type { AuditEntry, AuditFilter } from "../../../typescript/src/gen/signoff/v1/audit_pb.js";
import { audit, messageOf } from "../api";
import { channelText, outcomeText, short, stamp } from "../format";
import { diff } from "../jsonedit";
import { linkClick, navigate, reviewPath } from "../router";
import { Notice } from "./common";
import { DiffTable } from "./ReviewParts";

export function payload(e: AuditEntry): JsonObject {
  try {
    const v = JSON.parse(e.payloadJson || "{}");
    return v && typeof v === "object" && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

export function obj(v: JsonValue | undefined): JsonObject {
  return v && typeof v === "object" && !Array.isArray(v) ? v : {};
}

export function str(v: JsonValue | undefined): string {
  return typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v);
}

async function story(ref: string): Promise<AuditEntry[]> {
  const bySeq = new Map<bigint, AuditEntry>();
  const asked = new Set<string>();
  const todo: [keyof AuditFilter, string][] = [
    ["decisionId", ref],
    ["reviewId", ref],
    ["requestId", ref],
  ];
  while (todo.length) {
    const [field, value] = todo.pop()!;
    asked.add(`${field}=${value}`);
    let token = "";
    do {
      const res = await audit.queryAudit({ filter: { [field]: value }, pageSize: 1000, pageToken: token });
      for (const e of res.entries) {
        bySeq.set(e.seq, e);
        for (const [f, v] of [
          ["decisionId", e.decisionId],
          ["reviewId", e.reviewId],
        ] as [keyof AuditFilter, string][]) {
          if (v && !asked.has(`${f}=${v}`) && !todo.some(([tf, tv]) => tf === f && tv === v)) todo.push([f, v]);
        }
      }
      token = res.nextPageToken;
    } while (token);
  }
  return [...bySeq.values()].sort((a, b) => (a.seq < b.seq ? -1 : 1));
}

/** The story of one action: every entry of its decision, review and request, in order. */
export function Timeline({ id }: { id: string }) {
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState("");
  const [input, setInput] = useState(id);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    setInput(id);
    setEntries(null);
    setError("");
    if (!id) return;
    let gone = false;
    story(id)
      .then((es) => {
        if (gone) return;
        setEntries(es);
        heading.current?.focus();
      })
      .catch((err) => !gone && setError(messageOf(err)));
    return () => {
      gone = true;
    };
  }, [id]);
  return (
    <section aria-labelledby="timeline-title" class="card timeline">
      <h2 id="timeline-title" tabIndex={-1} ref={heading}>
        Timeline of one action
      </h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`/audit?story=${encodeURIComponent(input.trim())}`);
        }}
      >
        <label for="story-id">Decision, review or request id</label>
        <div class="row">
          <input id="story-id" type="text" value={input} onInput={(e) => setInput((e.target as HTMLInputElement).value)} />
          <button type="submit" class="btn" disabled={!input.trim()}>
            Show
          </button>
        </div>
      </form>
      {error && (
        <Notice kind="error" alert>
          {error}
        </Notice>
      )}
      {!id && <p class="muted">Pick "Timeline" on an entry, or paste an id.</p>}
      {id && !entries && !error && <p class="muted">Loading…</p>}
      {entries && !entries.length && <p>No audit entries for {id}.</p>}
      {entries && entries.length > 0 && (
        <ol class="story" data-testid="timeline">
          {entries.map((e) => (
            <StoryEntry key={String(e.seq)} e={e} />
          ))}
        </ol>
      )}
    </section>
  );
}

function StoryEntry({ e }: { e: AuditEntry }) {
  const p = payload(e);
  const act = obj(p.act);
  const req = obj(p.request);
  const d = obj(p.decision);
  const rules = Array.isArray(d.matched_rules) ? d.matched_rules.map(obj) : [];
  const edits = "params" in act ? diff(obj(p.requested_params), obj(act.params)) : null;
  return (
    <li class={`story-entry type-${e.type.split(".")[0]}`}>
      <p class="story-head">
        <span class="type">{e.type}</span> <span class="sub">#{String(e.seq)} · {stamp(e.time)}</span>
      </p>
      {e.type === "decision" && (
        <div>
          <p>
            <strong>{str(obj(req.action).name) || e.actionName}</strong> by {str(obj(req.principal).id) || e.actor}:{" "}
            <strong>{outcomeText(e.outcome) || str(d.outcome)}</strong>
            {str(d.reviewer_group) && <> (reviewers {str(d.reviewer_group)})</>}
          </p>
          <p class="sub">{str(d.reason)}</p>
          {rules.length > 0 && (
            <p class="sub">
              rules:{" "}
              {rules
                .map((m) => `${str(m.rule)} (${str(m.file)}${m.line ? `:${str(m.line)}` : ""}, ${str(m.decision).toLowerCase()}${m.shadow ? ", shadow" : ""})`)
                .join("; ")}
            </p>
          )}
          {str(req.justification) && <q>{str(req.justification)}</q>}
        </div>
      )}
      {e.type.startsWith("review.") && (
        <div>
          <p>
            by <strong>{str(act.reviewer) || e.actor}</strong>
            {e.type === "review.opened" && <> for group {str(p.reviewer_group)}</>}
            {e.type === "review.escalated" && <> to group {str(p.reviewer_group)}</>}
            {str(p.state) && (
              <>
                {" "}
                → state <strong>{str(p.state)}</strong>
              </>
            )}
            {e.reviewId && (
              <>
                {" "}
                ·{" "}
                <a href={reviewPath(e.reviewId)} onClick={linkClick}>
                  review {short(e.reviewId)}
                </a>
              </>
            )}
          </p>
          {channelText(str(act.channel)) && <p class="sub">{channelText(str(act.channel))}</p>}
          {str(act.comment) && <q>{str(act.comment)}</q>}
          {str(p.note) && <p class="sub">{str(p.note)}</p>}
          {edits && <DiffTable changes={edits} caption="Params: requested → approved" />}
        </div>
      )}
      {!e.type.startsWith("review.") && e.type !== "decision" && <p>by {e.actor || "-"}</p>}
      <details>
        <summary>Entry details</summary>
        <pre class="code">{JSON.stringify({ ...p, hash: e.hash, prev_hash: e.prevHash, policy_version: e.policyVersion }, null, 2)}</pre>
      </details>
    </li>
  );
}
