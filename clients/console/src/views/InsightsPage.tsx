// Policy insights: per rule, what its reviews became in a window (GetInsights, auditors).
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import type { Insights, RuleInsight } from "../../../typescript/src/gen/signoff/v1/policy_pb.js";
import { messageOf, policies } from "../api";
import { serverNow, serverTimeKnown } from "../clock";
import { span, stamp } from "../format";
import { AnalysisPanel } from "./AnalysisPanel";
import { Notice } from "./common";

const WINDOWS = [7, 30, 90];
const DAY_MS = 86_400_000;

function name(r: RuleInsight): string {
  return r.policy ? `${r.policy}/${r.rule}` : r.rule;
}

function replay(r: RuleInsight, days: number): string {
  const rule = r.rule === "(default)" ? "" : ` rule=${r.rule}`;
  return `signoff policy replay --policies ./policies-changed --server $SIGNOFF_SERVER since=-${days}d${rule}`;
}

export function InsightsPage() {
  const [days, setDays] = useState(30);
  const [group, setGroup] = useState("");
  const [shown, setShown] = useState<Insights | undefined>();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function load(d: number, g: string) {
    setBusy(true);
    setError("");
    try {
      // The server's clock (as the queue reports it), not the browser's: the window ends at
      // the server's "now". Opened right after sign-in, the page waits for the first snapshot.
      await serverTimeKnown();
      const since = timestampFromMs(serverNow() - d * DAY_MS);
      setShown(await policies.getInsights({ since, reviewerGroup: g.trim() }));
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }

  useEffect(() => {
    void load(days, group);
    // Reload when the window changes; the group applies on submit.
  }, [days]);

  return (
    <section aria-labelledby="insights-title" class="insights">
      <div class="page-head">
        <h1 id="insights-title">Policy insights</h1>
        <p class="sub">Per rule, what the reviews it asked for became, and what the policy analysis finds in the bundle in force. Times are UTC.</p>
      </div>
      <form
        class="card buttons"
        onSubmit={(e) => {
          e.preventDefault();
          void load(days, group);
        }}
      >
        <label class="check" for="i-days">
          Opened in the last
        </label>
        <select id="i-days" class="narrow-select" value={String(days)} onChange={(e) => setDays(Number((e.target as HTMLSelectElement).value))}>
          {WINDOWS.map((d) => (
            <option key={d} value={String(d)}>
              {d} days
            </option>
          ))}
        </select>
        <label class="check" for="i-group">
          Group
        </label>
        <input id="i-group" value={group} placeholder="all" onInput={(e) => setGroup((e.target as HTMLInputElement).value)} />
        <button type="submit" class="btn btn-primary" disabled={busy}>
          Show
        </button>
      </form>
      {error && (
        <Notice kind="error" alert>
          {error}
        </Notice>
      )}
      {shown && <Report insights={shown} days={days} />}
      <AnalysisPanel />
    </section>
  );
}

function Report({ insights, days }: { insights: Insights; days: number }) {
  const head = `${insights.reviews} reviews opened ${stamp(insights.since)} – ${stamp(insights.until)}`;
  if (!insights.rules.length) {
    return (
      <p class="muted" data-testid="insights-empty">
        {head}: no reviews in the window.
      </p>
    );
  }
  const flagged = insights.rules.filter((r) => r.flags.length);
  return (
    <>
      <p class="sub" aria-live="polite">
        {head}
        {insights.truncated && " (truncated: narrow the window for complete figures)"}
      </p>
      <table class="entries" data-testid="insights">
        <thead>
          <tr>
            {["Rule", "Reviews", "Approved", "Edited", "Rejected", "Expired", "Cancelled", "Pending", "Median", "P90", "Reviewers", "Disagree"].map((h) => (
              <th key={h} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {insights.rules.map((r) => {
            const timed = r.approvedUnchanged + r.edited + r.rejected > 0;
            return (
              <tr key={name(r)}>
                <th scope="row">
                  {name(r)}
                  {r.file && <span class="sub block">{`${r.file}:${r.line}`}</span>}
                </th>
                {[r.reviews, r.approvedUnchanged, r.edited, r.rejected, r.expired, r.cancelled, r.pending].map((n, i) => (
                  <td key={i} class="num">
                    {n}
                  </td>
                ))}
                <td class="num">{timed ? span(r.medianS * 1000) : "-"}</td>
                <td class="num">{timed ? span(r.p90S * 1000) : "-"}</td>
                <td class="num">{r.reviewers}</td>
                <td class="num">{r.compared ? `${Math.round(r.disagreement * 100)}%` : "-"}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {flagged.length > 0 && (
        <section aria-labelledby="flags-title" class="card">
          <h2 id="flags-title">To look at</h2>
          <ul>
            {flagged.flatMap((r) =>
              r.flags.map((f) => (
                <li key={`${name(r)}-${f.kind}`}>
                  <strong>{name(r)}</strong>: {f.kind.replaceAll("_", " ")}: {f.reason}
                  {f.kind === "auto_allow_candidate" && (
                    <>
                      <br />
                      Check the change first: <code>{replay(r, days)}</code>
                    </>
                  )}
                </li>
              )),
            )}
          </ul>
        </section>
      )}
    </>
  );
}
