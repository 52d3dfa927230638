// What the solver finds in the bundle in force (GetAnalysis): computed once per bundle
// version on the server; while it runs the panel says so and holds one long call open.
import { useEffect, useState } from "preact/hooks";
import { type AnalysisFinding, AnalysisState, type BundleAnalysis } from "../../../typescript/src/gen/signoff/v1/policy_pb.js";
import { messageOf, policies } from "../api";
import { Notice } from "./common";

// How long each call waits on the server for a running analysis (the server allows 30 s).
const WAIT_MS = 20_000;

function where(f: AnalysisFinding): string {
  return f.rule ? `${f.policy}/${f.rule}` : `${f.policy} (policy)`;
}

export function AnalysisPanel() {
  const [shown, setShown] = useState<BundleAnalysis | undefined>();
  const [error, setError] = useState("");

  useEffect(() => {
    const stop = new AbortController();
    async function follow() {
      // First call answers at once (RUNNING starts the analysis); later ones wait for it.
      let waitMs = 0;
      for (;;) {
        const got = await policies.getAnalysis({ waitMs }, { signal: stop.signal });
        setShown(got);
        if (got.state !== AnalysisState.RUNNING) return;
        waitMs = WAIT_MS;
      }
    }
    follow().catch((err) => {
      if (!stop.signal.aborted) setError(messageOf(err));
    });
    return () => stop.abort();
  }, []);

  return (
    <section aria-labelledby="analysis-title" class="card analysis" data-testid="analysis">
      <h2 id="analysis-title">Policy analysis</h2>
      <p class="sub">
        What the solver proves about the rules of the bundle in force, whatever requests come: the findings of <code>signoff policy analyze</code>.
      </p>
      {error && (
        <Notice kind="error" alert>
          {error}
        </Notice>
      )}
      {!error && !shown && <p class="muted">Loading…</p>}
      {shown && <Findings analysis={shown} />}
    </section>
  );
}

function Findings({ analysis }: { analysis: BundleAnalysis }) {
  const version = <code>{analysis.bundleVersion.slice(0, 19)}</code>;
  if (analysis.state === AnalysisState.RUNNING) {
    return (
      <p class="muted" aria-live="polite" data-testid="analysis-state">
        Bundle {version}: analysing… ({analysis.rules} rules, up to {analysis.timeoutS}s per question)
      </p>
    );
  }
  if (analysis.state === AnalysisState.UNAVAILABLE) {
    return (
      <Notice kind="info">
        <span data-testid="analysis-state">{analysis.detail}</span>
        <br />
        <code>pip install 'signoff[analyze]'</code>
      </Notice>
    );
  }
  if (analysis.state !== AnalysisState.DONE) {
    return (
      <Notice kind="warning">
        <span data-testid="analysis-state">{analysis.detail || "The analysis did not finish."}</span>
      </Notice>
    );
  }
  const head = (
    <p class="sub" aria-live="polite" data-testid="analysis-state">
      Bundle {version}: {analysis.rules} rules analysed in {analysis.seconds.toFixed(1)}s, {analysis.problems} problem(s)
      {analysis.truncated && `; showing ${analysis.findings.length} of ${analysis.total} findings`}.
    </p>
  );
  if (!analysis.findings.length) {
    return (
      <>
        {head}
        <p class="muted">Nothing found: every rule can match, decides something, and leaves nothing to the default decision.</p>
      </>
    );
  }
  return (
    <>
      {head}
      <table class="entries" data-testid="analysis-findings">
        <thead>
          <tr>
            {["Kind", "Rule", "Where", "Finding"].map((h) => (
              <th key={h} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {analysis.findings.map((f, i) => (
            <tr key={i} data-kind={f.kind}>
              <td>
                <span class="badge badge-muted">{f.kind}</span>
              </td>
              <th scope="row">{where(f)}</th>
              <td>{`${f.file}:${f.line}`}</td>
              <td>
                {f.message}
                {f.exampleJson && <pre class="example">{f.exampleJson}</pre>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
