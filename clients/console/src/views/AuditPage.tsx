import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AuditEntry, AuditFilter, AuditFilterSchema } from "../../../typescript/src/gen/signoff/v1/audit_pb.js";
import { Outcome } from "../../../typescript/src/gen/signoff/v1/common_pb.js";
import { audit, messageOf } from "../api";
import { iso, outcomeText, short, stamp } from "../format";
import { linkClick } from "../router";
import { Notice } from "./common";
import { Timeline, obj, payload, str } from "./AuditTimeline";

// The server's entry types (signoff.core.audit.ENTRY_TYPES; tests/unit/test_console_types.py
// keeps the two lists equal).
const TYPES = [
  "decision",
  "review.opened",
  "review.approved",
  "review.modified",
  "review.rejected",
  "review.expired",
  "review.escalated",
  "review.cancelled",
  "policy.loaded",
  "policy.rejected",
  "access.denied",
  "grant.created",
  "grant.revoked",
];
const STATES = ["PENDING", "APPROVED", "MODIFIED", "REJECTED", "EXPIRED", "CANCELLED"];
const PAGE_SIZES = [10, 50, 200];

type Form = {
  types: string[];
  action: string;
  outcome: string;
  principal: string;
  reviewer: string;
  group: string;
  rule: string;
  state: string;
  policy: string;
  id: string;
  idKind: "decisionId" | "reviewId" | "requestId";
  since: string;
  until: string;
  newest: boolean;
  pageSize: number;
};

const EMPTY: Form = {
  types: [],
  action: "",
  outcome: "",
  principal: "",
  reviewer: "",
  group: "",
  rule: "",
  state: "",
  policy: "",
  id: "",
  idKind: "decisionId",
  since: "",
  until: "",
  newest: true,
  pageSize: 50,
};

type FilterInit = Exclude<MessageInitShape<typeof AuditFilterSchema>, AuditFilter>;

function toFilter(f: Form): FilterInit {
  const out: FilterInit = {
    types: f.types,
    action: f.action.trim(),
    principal: f.principal.trim(),
    reviewer: f.reviewer.trim(),
    reviewerGroup: f.group.trim(),
    rule: f.rule.trim(),
    reviewState: f.state,
    policyVersion: f.policy.trim(),
    outcomes: f.outcome ? [Number(f.outcome) as Outcome] : [],
  };
  if (f.id.trim()) out[f.idKind] = f.id.trim();
  // The inputs are UTC, like every time the console and the audit log show.
  if (f.since) out.since = timestampFromMs(Date.parse(`${f.since}Z`));
  if (f.until) out.until = timestampFromMs(Date.parse(`${f.until}Z`));
  return out;
}

export function AuditPage(props: { params: URLSearchParams }) {
  const storyId = props.params.get("story") ?? "";
  const [form, setForm] = useState<Form>(EMPTY);
  const [applied, setApplied] = useState<Form>(EMPTY);
  const [tokens, setTokens] = useState<string[]>([""]); // page tokens of the pages seen
  const [page, setPage] = useState<{ entries: AuditEntry[]; next: string } | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    document.title = "Audit · Signoff";
  }, []);

  const run = async (f: Form, pageTokens: string[]) => {
    setBusy(true);
    setError("");
    try {
      const res = await audit.queryAudit({
        filter: toFilter(f),
        descending: f.newest,
        pageSize: f.pageSize,
        pageToken: pageTokens[pageTokens.length - 1],
      });
      setApplied(f);
      setTokens(pageTokens);
      setPage({ entries: res.entries, next: res.nextPageToken });
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    void run(EMPTY, [""]);
  }, []);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm((f) => ({ ...f, [k]: v }));
  const text = (k: keyof Form, label: string, placeholder = "") => (
    <div class="field">
      <label for={`f-${k}`}>{label}</label>
      <input
        id={`f-${k}`}
        type="text"
        value={form[k] as string}
        placeholder={placeholder}
        onInput={(e) => set(k, (e.target as HTMLInputElement).value as never)}
      />
    </div>
  );

  return (
    <section aria-labelledby="audit-title" class="audit">
      <div class="page-head">
        <h1 id="audit-title">Audit log</h1>
        <p class="sub">Every decision and every human act, hash-chained. Times are UTC.</p>
      </div>
      <div class="audit-grid">
        <div>
          <form
            class="card filters"
            aria-label="Audit filters"
            onSubmit={(e) => {
              e.preventDefault();
              void run(form, [""]);
            }}
          >
            <fieldset class="types">
              <legend>Entry types {form.types.length ? `(${form.types.length})` : "(all)"}</legend>
              {TYPES.map((t) => (
                <label key={t} class="check">
                  <input
                    type="checkbox"
                    checked={form.types.includes(t)}
                    onChange={(e) =>
                      set(
                        "types",
                        (e.target as HTMLInputElement).checked ? [...form.types, t] : form.types.filter((x) => x !== t),
                      )
                    }
                  />{" "}
                  {t}
                </label>
              ))}
            </fieldset>
            <div class="fields">
              {text("action", "Action (glob)", "refund.*")}
              <div class="field">
                <label for="f-outcome">Outcome</label>
                <select id="f-outcome" value={form.outcome} onChange={(e) => set("outcome", (e.target as HTMLSelectElement).value)}>
                  <option value="">any</option>
                  <option value={String(Outcome.AUTO_ALLOW)}>auto-allow</option>
                  <option value={String(Outcome.REQUIRE_REVIEW)}>require review</option>
                  <option value={String(Outcome.DENY)}>deny</option>
                </select>
              </div>
              {text("principal", "Principal")}
              {text("reviewer", "Reviewer")}
              {text("group", "Reviewer group")}
              {text("rule", "Rule")}
              <div class="field">
                <label for="f-state">Review state</label>
                <select id="f-state" value={form.state} onChange={(e) => set("state", (e.target as HTMLSelectElement).value)}>
                  <option value="">any</option>
                  {STATES.map((s) => (
                    <option key={s} value={s}>
                      {s.toLowerCase()}
                    </option>
                  ))}
                </select>
              </div>
              {text("policy", "Policy version")}
              <div class="field">
                <label for="f-since">Since (UTC)</label>
                <input id="f-since" type="datetime-local" step={1} value={form.since} onInput={(e) => set("since", (e.target as HTMLInputElement).value)} />
              </div>
              <div class="field">
                <label for="f-until">Until (UTC)</label>
                <input id="f-until" type="datetime-local" step={1} value={form.until} onInput={(e) => set("until", (e.target as HTMLInputElement).value)} />
              </div>
              <div class="field">
                <label for="f-idkind">Id kind</label>
                <select id="f-idkind" value={form.idKind} onChange={(e) => set("idKind", (e.target as HTMLSelectElement).value as Form["idKind"])}>
                  <option value="decisionId">decision id</option>
                  <option value="reviewId">review id</option>
                  <option value="requestId">request id</option>
                </select>
              </div>
              {text("id", "Id")}
            </div>
            <div class="buttons">
              <label class="check">
                <input type="checkbox" checked={form.newest} onChange={(e) => set("newest", (e.target as HTMLInputElement).checked)} /> Newest first
              </label>
              <label class="check" for="f-size">
                Per page
              </label>
              <select id="f-size" class="narrow-select" value={String(form.pageSize)} onChange={(e) => set("pageSize", Number((e.target as HTMLSelectElement).value))}>
                {PAGE_SIZES.map((n) => (
                  <option key={n} value={String(n)}>
                    {n}
                  </option>
                ))}
              </select>
              <button type="submit" class="btn btn-primary" disabled={busy}>
                Search
              </button>
              <button
                type="button"
                class="btn"
                onClick={() => {
                  setForm(EMPTY);
                  void run(EMPTY, [""]);
                }}
              >
                Clear
              </button>
            </div>
          </form>
          {error && (
            <Notice kind="error" alert>
              {error}
            </Notice>
          )}
          {page && (
            <Results
              entries={page.entries}
              pageNo={tokens.length}
              busy={busy}
              onOlder={page.next ? () => run(applied, [...tokens, page.next]) : undefined}
              onNewer={tokens.length > 1 ? () => run(applied, tokens.slice(0, -1)) : undefined}
              newest={applied.newest}
            />
          )}
        </div>
        <Timeline id={storyId} />
      </div>
    </section>
  );
}

function Results(props: {
  entries: AuditEntry[];
  pageNo: number;
  busy: boolean;
  newest: boolean;
  onOlder?: () => void;
  onNewer?: () => void;
}) {
  const prevLabel = props.newest ? "Newer" : "Earlier";
  const nextLabel = props.newest ? "Older" : "Later";
  return (
    <section aria-labelledby="results-title" class="card">
      <h2 id="results-title">
        Entries <span class="sub" aria-live="polite">page {props.pageNo}, {props.entries.length} shown</span>
      </h2>
      {!props.entries.length ? (
        <p class="muted">No entries match.</p>
      ) : (
        <table class="entries">
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">Time</th>
              <th scope="col">Type</th>
              <th scope="col">Actor</th>
              <th scope="col">Action · group</th>
              <th scope="col">Outcome / state</th>
              <th scope="col">Story</th>
            </tr>
          </thead>
          <tbody>
            {props.entries.map((e) => {
              const p = payload(e);
              const d = obj(p.decision);
              const id = e.decisionId || e.reviewId || e.requestId;
              return (
                <tr key={String(e.seq)}>
                  <td class="num">{String(e.seq)}</td>
                  <td>
                    <time dateTime={iso(e.time)}>{stamp(e.time).replace(" UTC", "")}</time>
                  </td>
                  <td>
                    <span class={`type type-${e.type.split(".")[0]}`}>{e.type}</span>
                  </td>
                  <td>{e.actor || "-"}</td>
                  <td>
                    {e.actionName || "-"}
                    {(str(d.reviewer_group) || str(p.reviewer_group)) && (
                      <span class="sub block">{str(d.reviewer_group) || str(p.reviewer_group)}</span>
                    )}
                  </td>
                  <td>{outcomeText(e.outcome) || str(p.state).toLowerCase() || "-"}</td>
                  <td>
                    {id ? (
                      <a href={`/audit?story=${encodeURIComponent(id)}`} onClick={linkClick} aria-label={`Timeline of ${e.actionName || e.type} ${short(id)}`}>
                        Timeline
                      </a>
                    ) : (
                      "-"
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <div class="buttons pager">
        <button type="button" class="btn" disabled={!props.onNewer || props.busy} onClick={props.onNewer}>
          ← {prevLabel}
        </button>
        <button type="button" class="btn" disabled={!props.onOlder || props.busy} onClick={props.onOlder}>
          {nextLabel} →
        </button>
      </div>
    </section>
  );
}

/** Every entry of the action(s) an id names, following the decision and review ids the
 * entries share (as `signoff audit show` does), oldest first. */
