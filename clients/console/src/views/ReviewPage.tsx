import type { JsonObject } from "@bufbuild/protobuf";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Caller, Review, ReviewAct } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { ReviewState, Verdict } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { asConnectError, Code, type ConnectError, isTransient, messageOf, reviews } from "../api";
import { keepStreaming } from "../connection";
import { ms, serverNow } from "../clock";
import { type Draft, preview, problem, toSpec } from "../grants";
import { durationMs, literal, ruleText, scalar, short, span, stamp, stateText, verdictText } from "../format";
import { type Change, diff, leaves, parseParams, pretty } from "../jsonedit";
import { useKeys } from "../keys";
import { linkClick, navigate, reviewPath } from "../router";
import { groupsText, queue as queueStore, reviewsFor } from "../session";
import { Kbd, KeyValues, Notice, StateBadge, TimeLeft } from "./common";
import { GrantForm } from "./GrantForm";

type Load =
  | { state: "loading" }
  | { state: "error"; error: ConnectError }
  | { state: "ok"; review: Review };

type Outcome = { kind: "success" | "error" | "warning"; text: string } | null;

/** The next (or previous) pending review of the queue after `id`; the oldest when `id` is
 * not in the queue (any more). */
export function neighbour(id: string | undefined, step: 1 | -1): string | undefined {
  const q = queueStore.get();
  if (q.state !== "live") return undefined;
  const list = q.queue.reviews;
  const i = list.findIndex((r) => r.reviewId === id);
  if (i < 0) return list[0]?.reviewId;
  return list[i + step]?.reviewId;
}

export function ReviewPage(props: { id: string; caller: Caller }) {
  const { id, caller } = props;
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [precedents, setPrecedents] = useState<Review[] | string | null>(null);
  const [live, setLive] = useState<string>(""); // what changed while the page was open
  const [outcome, setOutcome] = useState<Outcome>(null);
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState(false);
  const [editText, setEditText] = useState("");
  const [comment, setComment] = useState("");
  const [commentError, setCommentError] = useState("");
  const [grant, setGrant] = useState<Draft | null>(null); // kept across refusals and updates
  const [grantError, setGrantError] = useState("");
  const myVersion = useRef<bigint>(-1n); // the version my own act produced
  const current = useRef<Review | null>(null);
  const editor = useRef<HTMLTextAreaElement>(null);
  const commentBox = useRef<HTMLTextAreaElement>(null);
  const nextButton = useRef<HTMLButtonElement>(null);

  const accept = (r: Review) => {
    const prev = current.current;
    if (prev && r.version <= prev.version) return;
    current.current = r;
    setLoad({ state: "ok", review: r });
    // My own act may come back through the watch before SubmitReview answers: not news.
    const mine =
      !!prev && r.acts.length > prev.acts.length && r.acts[r.acts.length - 1].reviewer === caller.id;
    if (prev && r.version !== myVersion.current && !mine) setLive(describeChange(prev, r));
  };

  useEffect(() => {
    document.title = `Review ${short(id)} · Signoff`;
    setLoad({ state: "loading" });
    setPrecedents(null);
    setLive("");
    setOutcome(null);
    setEditing(false);
    setComment("");
    setCommentError("");
    current.current = null;
    myVersion.current = -1n;
    let stop: (() => void) | undefined;
    let gone = false;
    reviews
      .getReview({ reviewId: id })
      .then((r) => {
        if (gone) return;
        accept(r);
        document.title = `${r.request?.action?.name ?? "Review"} · Signoff`;
        stop = keepStreaming(`review ${id}`, (signal) => reviews.watchReview({ reviewId: id }, { signal }), {
          message: accept,
        }, true);
      })
      .catch((err) => {
        if (!gone) setLoad({ state: "error", error: asConnectError(err) });
      });
    reviews
      .listPrecedents({ reviewId: id, limit: 10 })
      .then((p) => !gone && setPrecedents(p.precedents))
      .catch((err) => !gone && setPrecedents(messageOf(err)));
    return () => {
      gone = true;
      stop?.();
    };
  }, [id]);

  const loaded = load.state !== "loading";
  useEffect(() => {
    // After an in-app navigation the link that was clicked is gone: start at the heading.
    if (loaded && document.activeElement === document.body) {
      const h = document.querySelector<HTMLElement>("main h1");
      if (h) {
        h.tabIndex = -1;
        h.focus({ preventScroll: true });
      }
    }
  }, [loaded]);

  const review = load.state === "ok" ? load.review : null;
  const requested = (review?.request?.action?.params ?? {}) as JsonObject;
  const parsed = useMemo(() => (editing ? parseParams(editText) : null), [editing, editText]);
  const changes: Change[] = parsed?.ok ? diff(requested, parsed.value) : [];
  const block = review ? whyNot(review, caller) : "";
  const canAct = !!review && !block && !busy;
  const approvedAlready =
    !!review && review.acts.some((a) => a.reviewer === caller.id && a.verdict !== Verdict.REJECT);

  const startEdit = () => {
    if (!review || !canAct) return;
    if (!editing) setEditText(pretty(requested));
    setEditing(true);
    setTimeout(() => editor.current?.focus(), 0);
  };

  const submit = async (verdict: Verdict) => {
    const r = current.current;
    if (!r || !canAct) return;
    if (verdict === Verdict.REJECT && !comment.trim()) {
      setCommentError("Say why you reject: the agent and the audit log get this comment.");
      commentBox.current?.focus();
      return;
    }
    if (verdict === Verdict.MODIFY && !(parsed?.ok && changes.length)) return;
    if (verdict === Verdict.APPROVE && approvedAlready) return;
    const offer = r.grantOffer;
    const granting = verdict === Verdict.APPROVE && !!grant && !!offer?.allowed ? grant : null;
    if (granting && offer && problem(granting, offer)) return; // the form says what is wrong
    const action = r.request?.action?.name ?? "";
    const words = granting && offer ? preview(granting, offer, action, r.request?.principal?.id ?? "") : "";
    setCommentError("");
    setGrantError("");
    setBusy(true);
    setOutcome(null);
    try {
      const res = await reviews.submitReview({
        reviewId: r.reviewId,
        verdict,
        comment: comment.trim(),
        expectedVersion: r.version,
        params: verdict === Verdict.MODIFY && parsed?.ok ? parsed.value : undefined,
        grant: granting ? toSpec(granting) : undefined,
      });
      myVersion.current = res.version;
      accept(res);
      setEditing(false);
      setLive("");
      setGrant(null);
      const granted = words ? ` Standing approval granted: ${words}.` : "";
      setOutcome({ kind: "success", text: doneText(res, verdict) + granted });
      setTimeout(() => nextButton.current?.focus(), 0);
    } catch (err) {
      const e = asConnectError(err);
      if (granting && e.code === Code.InvalidArgument && messageOf(e).startsWith("grant")) {
        setGrantError(messageOf(e)); // a bound, the duration or the uses: fix and retry
      } else if (e.code === Code.FailedPrecondition) {
        let now: Review | null = null;
        try {
          now = await reviews.getReview({ reviewId: r.reviewId });
        } catch {
          // the message below is still right; the watch will bring the current state
        }
        if (now) {
          myVersion.current = -1n;
          current.current = now;
          setLoad({ state: "ok", review: now });
          setLive("");
        }
        // Unchanged and still pending: it was the grant that was refused, not the act.
        if (granting && now?.state === ReviewState.PENDING && now.version === r.version) setGrantError(messageOf(e));
        else setOutcome({ kind: "error", text: staleText(now, e) });
      } else if (isTransient(e)) {
        setOutcome({
          kind: "warning",
          text:
            `Could not reach Signoff (${messageOf(e)}). Your act may or may not have been ` +
            "recorded: this page shows the review's current state once reconnected; act again " +
            "only if it is still pending.",
        });
      } else {
        setOutcome({ kind: "error", text: `Not recorded: ${messageOf(e)}` });
      }
    } finally {
      setBusy(false);
    }
  };

  const go = (step: 1 | -1) => {
    const next = neighbour(id, step);
    if (next) navigate(reviewPath(next));
    else if (step === 1) navigate("/");
  };

  useKeys({
    a: () => (editing ? submit(Verdict.MODIFY) : submit(Verdict.APPROVE)),
    e: startEdit,
    r: () => submit(Verdict.REJECT),
    j: () => go(1),
    n: () => go(1),
    k: () => go(-1),
    Escape: () => editing && setEditing(false),
  });

  if (load.state === "loading") return <p class="muted">Loading review {id}…</p>;
  if (load.state === "error") return <LoadError id={id} error={load.error} caller={caller} />;
  const r = load.review;
  const pending = r.state === ReviewState.PENDING;
  const approvals = r.acts.filter((a) => a.verdict !== Verdict.REJECT).length;
  const commentRequiredId = "comment-help";

  return (
    <article class="review" aria-labelledby="review-title">
      <header class="review-head">
        <div>
          <p class="crumbs">
            <a href="/" onClick={linkClick}>
              Queue
            </a>{" "}
            / review <code>{short(r.reviewId)}</code>
          </p>
          <h1 id="review-title">
            <code>{r.request?.action?.name}</code>
          </h1>
          <p class="head-meta">
            <StateBadge state={r.state} /> group <strong>{r.reviewerGroup}</strong>
            {r.escalatedFrom.length > 0 && <> (escalated from {r.escalatedFrom.join(", ")})</>} · requested
            by <strong>{r.request?.principal?.id || "-"}</strong>
            {r.request?.principal?.onBehalfOf && <> for <strong>{r.request.principal.onBehalfOf}</strong></>} ·
            opened {stamp(r.createdAt)}
          </p>
        </div>
        {pending && (
          <div class="head-deadline">
            <TimeLeft expires={r.expiresAt} timeoutMs={durationMs(r.timeout)} onTimeout={r.onTimeout || "deny"} />
            <span class="sub">then {r.onTimeout || "deny"}</span>
          </div>
        )}
      </header>

      <div class="review-grid">
        <div class="review-main">
          <section aria-labelledby="why-title" class="card">
            <h2 id="why-title">Why it needs you</h2>
            <p class="reason">{r.reason}</p>
            <h3>The agent's justification</h3>
            {r.request?.justification ? (
              <blockquote class="justification">{r.request.justification}</blockquote>
            ) : (
              <p class="muted">The agent gave none.</p>
            )}
          </section>

          <div class="two">
            <section aria-labelledby="params-title" class="card">
              <h2 id="params-title">Params</h2>
              <KeyValues value={requested} prefix="action.params" redacted={r.redactedPaths} caption="Requested params" empty="no params" />
              {r.redactedPaths.length > 0 && (
                <p class="sub">Redacted by the policy: {r.redactedPaths.join(", ")}</p>
              )}
            </section>
            <section aria-labelledby="rules-title" class="card">
              <h2 id="rules-title">Matched rules</h2>
              <ul class="rules">
                {r.matchedRules.map((m) => (
                  <li key={`${m.file}:${m.rule}`} class={m.shadow ? "shadow" : ""}>
                    <span class={`effect effect-${ruleText(m.decision)}`}>{ruleText(m.decision)}</span>{" "}
                    <strong>{m.rule}</strong>
                    {m.shadow && <span class="tag">shadow: decided nothing</span>}
                    <span class="sub">
                      {m.file}
                      {m.line ? `:${m.line}` : ""}
                      {m.policy && ` (policy ${m.policy})`}
                      {m.reviewerGroup && ` · reviewers ${m.reviewerGroup}`}
                    </span>
                    {m.reason && <span class="rule-reason">{m.reason}</span>}
                    {m.error && <span class="rule-error">evaluation error: {m.error}</span>}
                  </li>
                ))}
                {!r.matchedRules.length && <li class="muted">No rule matched: the default decided.</li>}
              </ul>
            </section>
          </div>

          <Precedents list={precedents} />

          <section aria-labelledby="request-title" class="card">
            <h2 id="request-title">Request</h2>
            <RequestDetails r={r} />
          </section>
        </div>

        <aside class="review-side" aria-labelledby="decide-title">
          <section class="card decide">
            <h2 id="decide-title">Decision</h2>
            <p>
              Approvals: <strong>{approvals}</strong> of <strong>{r.approvalsRequired || 1}</strong> needed
            </p>
            {r.acts.length > 0 && <Acts acts={r.acts} />}
            {live && (
              <Notice kind="warning" alert>
                {live}
              </Notice>
            )}
            {outcome && (
              <Notice kind={outcome.kind} alert>
                {outcome.text}
              </Notice>
            )}
            {!pending && !outcome && <Resolution r={r} />}
            {pending && block && <Notice kind="info">{block}</Notice>}
            {pending && !block && (
              <form
                class="act"
                onSubmit={(e) => {
                  e.preventDefault();
                }}
              >
                <label for="comment">
                  Comment <span class="sub" id={commentRequiredId}>required to reject; the agent and the audit log get it</span>
                </label>
                <textarea
                  id="comment"
                  ref={commentBox}
                  rows={2}
                  maxLength={4096}
                  value={comment}
                  aria-describedby={commentError ? `${commentRequiredId} comment-error` : commentRequiredId}
                  aria-invalid={commentError ? true : undefined}
                  onInput={(e) => {
                    setComment((e.target as HTMLTextAreaElement).value);
                    setCommentError("");
                  }}
                />
                {commentError && (
                  <p id="comment-error" class="field-error" role="alert">
                    {commentError}
                  </p>
                )}
                {!editing && (
                  <GrantForm
                    offer={r.grantOffer}
                    draft={grant}
                    setDraft={setGrant}
                    error={grantError}
                    action={r.request?.action?.name ?? ""}
                    principal={r.request?.principal?.id ?? ""}
                    busy={busy}
                  />
                )}
                {!editing ? (
                  <div class="buttons">
                    <button type="button" class="btn btn-approve" disabled={!canAct || approvedAlready} onClick={() => submit(Verdict.APPROVE)}>
                      Approve <Kbd>a</Kbd>
                    </button>
                    <button type="button" class="btn" disabled={!canAct} onClick={startEdit}>
                      Edit params <Kbd>e</Kbd>
                    </button>
                    <button type="button" class="btn btn-reject" disabled={!canAct} onClick={() => submit(Verdict.REJECT)}>
                      Reject <Kbd>r</Kbd>
                    </button>
                  </div>
                ) : (
                  <Editor
                    text={editText}
                    setText={setEditText}
                    parsed={parsed}
                    changes={changes}
                    editor={editor}
                    busy={busy}
                    redacted={r.redactedPaths.some((p) => p.startsWith("action.params"))}
                    onSubmit={() => submit(Verdict.MODIFY)}
                    onCancel={() => setEditing(false)}
                  />
                )}
                {approvedAlready && <p class="sub">You approved already; another reviewer must approve too.</p>}
              </form>
            )}
            <div class="nav-next">
              <button type="button" class="btn btn-quiet" ref={nextButton} onClick={() => go(1)}>
                Next review <Kbd>n</Kbd>
              </button>
            </div>
          </section>
        </aside>
      </div>
    </article>
  );
}

function Editor(props: {
  text: string;
  setText: (t: string) => void;
  parsed: ReturnType<typeof parseParams> | null;
  changes: Change[];
  editor: { current: HTMLTextAreaElement | null };
  busy: boolean;
  redacted: boolean;
  onSubmit: () => void;
  onCancel: () => void;
}) {
  const p = props.parsed;
  const invalid = !!p && !p.ok;
  const unchanged = !!p?.ok && !props.changes.length;
  const why = invalid ? "Fix the JSON first." : unchanged ? "Nothing edited yet: use Approve instead." : "";
  return (
    <div class="editor">
      <label for="params-editor">Edited params (JSON)</label>
      <textarea
        id="params-editor"
        ref={props.editor}
        class="code"
        spellcheck={false}
        rows={Math.min(14, Math.max(5, props.text.split("\n").length + 1))}
        value={props.text}
        aria-invalid={invalid || undefined}
        aria-describedby="params-status"
        onInput={(e) => props.setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.preventDefault();
            props.onCancel();
          } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            props.onSubmit();
          }
        }}
      />
      <div id="params-status" aria-live="polite">
        {p && !p.ok && (
          <p class="field-error" data-testid="json-error">
            Invalid JSON at line {p.line}, column {p.column}: {p.message}
          </p>
        )}
        {props.redacted && (
          <p class="sub">
            Values shown as "[REDACTED]" stay as the agent sent them; replace one only to set a new value.
          </p>
        )}
      </div>
      {p?.ok && <DiffTable changes={props.changes} />}
      <div class="buttons">
        <button
          type="button"
          class="btn btn-approve"
          disabled={props.busy || invalid || unchanged}
          aria-describedby={why ? "submit-why" : undefined}
          onClick={props.onSubmit}
        >
          Approve with edits <Kbd>Ctrl+Enter</Kbd>
        </button>
        <button type="button" class="btn" onClick={props.onCancel}>
          Cancel edit <Kbd>Esc</Kbd>
        </button>
      </div>
      {why && (
        <p class="sub" id="submit-why">
          {why}
        </p>
      )}
    </div>
  );
}

export function DiffTable(props: { changes: Change[]; caption?: string }) {
  if (!props.changes.length) return <p class="muted">No changes from the requested params.</p>;
  return (
    <table class="diff" data-testid="params-diff">
      <caption>{props.caption ?? `${props.changes.length} change${props.changes.length > 1 ? "s" : ""}: requested → edited`}</caption>
      <thead>
        <tr>
          <th scope="col">Path</th>
          <th scope="col">Requested</th>
          <th scope="col">Edited</th>
        </tr>
      </thead>
      <tbody>
        {props.changes.map((c) => (
          <tr key={c.path} class={`diff-${c.kind}`}>
            <th scope="row">
              <span class="diff-mark" aria-label={c.kind}>
                {c.kind === "added" ? "+" : c.kind === "removed" ? "−" : "~"}
              </span>{" "}
              <code>{c.path}</code>
            </th>
            <td>{c.kind === "added" ? <span class="muted">(absent)</span> : <code class="before">{literal(c.before)}</code>}</td>
            <td>{c.kind === "removed" ? <span class="muted">(removed)</span> : <code class="after">{literal(c.after)}</code>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Acts({ acts }: { acts: ReviewAct[] }) {
  return (
    <ol class="acts" aria-label="Acts so far">
      {acts.map((a, i) => (
        <li key={i}>
          <strong>{a.reviewer}</strong> {verdictText(a.verdict)} <span class="sub">{stamp(a.at)}</span>
          {a.comment && <q class="comment">{a.comment}</q>}
        </li>
      ))}
    </ol>
  );
}

function Resolution({ r }: { r: Review }) {
  const last = r.acts[r.acts.length - 1];
  return (
    <Notice kind={r.state === ReviewState.APPROVED || r.state === ReviewState.MODIFIED ? "success" : "info"}>
      This review is {stateText(r.state)}
      {last && r.state !== ReviewState.EXPIRED && r.state !== ReviewState.CANCELLED ? ` by ${last.reviewer}` : ""}
      {r.resolvedAt ? ` (${stamp(r.resolvedAt)})` : ""}
      {r.resolutionNote ? `: ${r.resolutionNote}` : "."} Resolved reviews cannot change.
    </Notice>
  );
}

function RequestDetails({ r }: { r: Review }) {
  const req = r.request;
  const p = req?.principal;
  const res = req?.resource;
  return (
    <div class="request">
      <dl class="facts">
        <dt>Principal</dt>
        <dd>
          {p?.id || "-"}
          {p?.kind && <span class="sub"> ({p.kind})</span>}
        </dd>
        {p?.onBehalfOf && (
          <>
            <dt>On behalf of</dt>
            <dd>{p.onBehalfOf}</dd>
          </>
        )}
        {!!p?.roles.length && (
          <>
            <dt>Roles</dt>
            <dd>{p.roles.join(", ")}</dd>
          </>
        )}
        {!!p?.tags.length && (
          <>
            <dt>Tags</dt>
            <dd>{p.tags.join(", ")}</dd>
          </>
        )}
        <dt>Resource</dt>
        <dd>{res && (res.kind || res.id) ? `${res.kind || "?"} ${res.id}` : <span class="muted">none</span>}</dd>
        {req?.requestId && (
          <>
            <dt>Request id</dt>
            <dd>
              <code>{req.requestId}</code>
            </dd>
          </>
        )}
        <dt>Policy</dt>
        <dd>
          <code class="wrap">{r.policyVersion}</code>
        </dd>
      </dl>
      {res?.attributes && Object.keys(res.attributes).length > 0 && (
        <>
          <h3>Resource attributes</h3>
          <KeyValues value={res.attributes} prefix="resource.attributes" redacted={r.redactedPaths} />
        </>
      )}
      {p?.attributes && Object.keys(p.attributes).length > 0 && (
        <>
          <h3>Principal attributes</h3>
          <KeyValues value={p.attributes} prefix="principal.attributes" redacted={r.redactedPaths} />
        </>
      )}
      <h3>Context</h3>
      <KeyValues value={req?.context} prefix="context" redacted={r.redactedPaths} empty="no context given" />
    </div>
  );
}

function Precedents({ list }: { list: Review[] | string | null }) {
  let body;
  if (list === null) body = <p class="muted">Looking for similar reviews…</p>;
  else if (typeof list === "string") body = <Notice kind="error">Could not load precedents: {list}</Notice>;
  else if (!list.length) {
    body = <p class="muted">No earlier review of this action under the same rules: this is the first.</p>;
  } else {
    const count = (s: ReviewState) => list.filter((p) => p.state === s).length;
    const parts = [
      [count(ReviewState.APPROVED), "approved"],
      [count(ReviewState.MODIFIED), "approved with edits"],
      [count(ReviewState.REJECTED), "rejected"],
      [count(ReviewState.EXPIRED), "expired"],
    ].filter(([n]) => n) as [number, string][];
    body = (
      <>
        <p class="summary" data-testid="precedent-summary">
          Last {list.length}: {parts.map(([n, what]) => `${n} ${what}`).join(" · ")}
        </p>
        <table class="precedents">
          <caption class="sr-only">Earlier reviews of the same action under the same rules, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Resolved</th>
              <th scope="col">Outcome</th>
              <th scope="col">By</th>
              <th scope="col">Requested</th>
              <th scope="col">Edits</th>
              <th scope="col">Comment</th>
            </tr>
          </thead>
          <tbody>
            {list.map((p) => (
              <PrecedentRow key={p.reviewId} p={p} />
            ))}
          </tbody>
        </table>
      </>
    );
  }
  return (
    <section aria-labelledby="precedents-title" class="card">
      <h2 id="precedents-title">
        Precedents <span class="sub">same action, same rules, newest first</span>
      </h2>
      {body}
    </section>
  );
}

function PrecedentRow({ p }: { p: Review }) {
  const requested = (p.request?.action?.params ?? {}) as JsonObject;
  const edits = p.state === ReviewState.MODIFIED ? diff(requested, (p.finalParams ?? {}) as JsonObject) : [];
  const comments = p.acts.filter((a) => a.comment);
  const at = ms(p.resolvedAt);
  return (
    <tr>
      <td>
        <a href={reviewPath(p.reviewId)} onClick={linkClick} title={stamp(p.resolvedAt)}>
          {at !== undefined ? `${span(serverNow() - at)} ago` : "-"}
        </a>
      </td>
      <td>
        <StateBadge state={p.state} />
      </td>
      <td>{p.acts.map((a) => a.reviewer).join(", ") || <span class="muted">nobody (timed out)</span>}</td>
      <td class="compact">
        {leaves(requested)
          .slice(0, 4)
          .map(([k, v]) => (
            <span key={k} class="pair">
              {k}={v === "[REDACTED]" ? "▒" : scalar(v)}
            </span>
          ))}
      </td>
      <td class="compact">
        {edits.length ? (
          edits.map((c) => (
            <span key={c.path} class="pair">
              {c.path}: {literal(c.before)} → {literal(c.after)}
            </span>
          ))
        ) : (
          <span class="muted">none</span>
        )}
      </td>
      <td>{comments.length ? comments.map((a) => <q key={a.reviewer}>{a.comment}</q>) : <span class="muted">-</span>}</td>
    </tr>
  );
}

function LoadError({ id, error, caller }: { id: string; error: ConnectError; caller: Caller }) {
  const mine = groupsText(caller);
  let title = "This review could not be loaded";
  let body = <p>{messageOf(error)}</p>;
  if (error.code === Code.NotFound) {
    title = "Review not found";
    body = (
      <p>
        There is no review <code>{id}</code>. Check the link; reviews are never deleted.
      </p>
    );
  } else if (error.code === Code.PermissionDenied) {
    title = "Not yours to review";
    const group = /group[s]? ['"]?([\w.:*-]+)/i.exec(messageOf(error))?.[1];
    body = (
      <>
        <p data-testid="permission-denied">
          {group
            ? `This review belongs to group ${group}; you review for ${mine}.`
            : `This review belongs to a group you do not review for; you review for ${mine}.`}
        </p>
        <p class="sub">Signoff said: {messageOf(error)}</p>
      </>
    );
  } else if (isTransient(error)) {
    title = "Signoff is not reachable";
    body = <p>{messageOf(error)}. Reload the page once the server is back.</p>;
  }
  return (
    <section class="card narrow" aria-labelledby="err-title">
      <h1 id="err-title">{title}</h1>
      <div role="alert">{body}</div>
      <p>
        <a href="/" onClick={linkClick}>
          Back to the queue
        </a>
      </p>
    </section>
  );
}

/** Why the caller may not act on a pending review ("" if they may). */
function whyNot(r: Review, caller: Caller): string {
  if (r.state !== ReviewState.PENDING) return "resolved";
  const p = r.request?.principal;
  if (p && (p.id === caller.id || p.onBehalfOf === caller.id)) {
    return "Separation of duties: you requested this action (or it acts on your behalf), so someone else must review it.";
  }
  if (!reviewsFor(caller, r.reviewerGroup)) {
    const mine = groupsText(caller);
    return `You can see this review but not act on it: it belongs to group ${r.reviewerGroup}, and you review for ${mine}.`;
  }
  return "";
}

function lastAct(r: Review): ReviewAct | undefined {
  return r.acts[r.acts.length - 1];
}

function describeChange(prev: Review, now: Review): string {
  const act = lastAct(now);
  const newAct = now.acts.length > prev.acts.length ? act : undefined;
  if (now.state !== ReviewState.PENDING) {
    if (now.state === ReviewState.EXPIRED) {
      return `This review expired while you had it open${now.resolutionNote ? `: ${now.resolutionNote}` : ""}.`;
    }
    if (now.state === ReviewState.CANCELLED) return "The agent cancelled this review while you had it open.";
    return `${newAct?.reviewer ?? "Someone"} ${stateText(now.state)} this review while you had it open.`;
  }
  if (now.reviewerGroup !== prev.reviewerGroup) {
    return `This review was escalated from ${prev.reviewerGroup} to ${now.reviewerGroup} while you had it open.`;
  }
  if (newAct) {
    return `${newAct.reviewer} ${verdictText(newAct.verdict)} while you had it open (${
      now.acts.filter((a) => a.verdict !== Verdict.REJECT).length
    } of ${now.approvalsRequired} approvals). Check it again before acting.`;
  }
  return "This review changed while you had it open; check it again before acting.";
}

function doneText(r: Review, verdict: Verdict): string {
  const what = verdict === Verdict.MODIFY ? "Approved with edits" : verdict === Verdict.REJECT ? "Rejected" : "Approved";
  if (r.state === ReviewState.PENDING) {
    const n = r.acts.filter((a) => a.verdict !== Verdict.REJECT).length;
    return `${what}. ${n} of ${r.approvalsRequired} approvals: the review waits for another reviewer.`;
  }
  return `${what}: the review is ${stateText(r.state)} and the agent has been told.`;
}

function staleText(now: Review | null, e: ConnectError): string {
  if (now && now.state !== ReviewState.PENDING) {
    const act = lastAct(now);
    const who =
      now.state === ReviewState.EXPIRED
        ? "It expired"
        : now.state === ReviewState.CANCELLED
          ? "The agent cancelled it"
          : `${act?.reviewer ?? "Another reviewer"} ${stateText(now.state)} it`;
    return `Not recorded: someone else got there first. ${who}${now.resolvedAt ? ` at ${stamp(now.resolvedAt)}` : ""}, so this review is resolved and cannot change.`;
  }
  if (now) {
    return `Not recorded: this review changed since you opened it (${messageOf(e)}). The page now shows the current version; look at it again, then act.`;
  }
  return `Not recorded: ${messageOf(e)}`;
}
