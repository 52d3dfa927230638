import type { JsonObject } from "@bufbuild/protobuf";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Caller, Review } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { ReviewState, Verdict } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { asConnectError, Code, type ConnectError, isTransient, messageOf, reviews } from "../api";
import { keepStreaming } from "../connection";
import { type Draft, preview, problem, toSpec } from "../grants";
import { durationMs, ruleText, short, stamp } from "../format";
import { type Change, diff, parseParams, pretty } from "../jsonedit";
import { useKeys } from "../keys";
import { linkClick, navigate, reviewPath } from "../router";
import { queue as queueStore } from "../session";
import { Kbd, KeyValues, Notice, StateBadge, TimeLeft } from "./common";
import { GrantForm } from "./GrantForm";

import { scopedReview } from "../email";
import { Acts, Editor, LoadError, Precedents, RequestDetails, Resolution } from "./ReviewParts";
import { describeChange, doneText, staleText, inBandRequester, whyNot } from "./reviewText";
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
  // A session from an e-mail link: this review only (no precedents, grants or next review).
  const scoped = scopedReview() !== "";
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
    if (!scoped) {
      reviews
        .listPrecedents({ reviewId: id, limit: 10 })
        .then((p) => !gone && setPrecedents(p.precedents))
        .catch((err) => !gone && setPrecedents(messageOf(err)));
    }
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

  // The requester settling in band approves or rejects as asked; edits are the group's.
  const requester = !!review && inBandRequester(review, caller);
  const startEdit = () => {
    if (!review || !canAct || requester) return;
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
        // Unchanged and still pending: nobody else acted. It was the grant that was refused,
        // or the act as it stands (an edit the policy does not let this reviewer settle):
        // say the server's reason and leave the editor open.
        const unchanged = now?.state === ReviewState.PENDING && now.version === r.version;
        if (granting && unchanged) setGrantError(messageOf(e));
        else if (unchanged) setOutcome({ kind: "error", text: `Not recorded: ${messageOf(e)}` });
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
            {!scoped && (
              <>
                <a href="/" onClick={linkClick}>
                  Queue
                </a>{" "}
                /{" "}
              </>
            )}
            review <code>{short(r.reviewId)}</code>
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

          {!scoped && <Precedents list={precedents} />}

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
                {!editing && !scoped && (
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
                    <button type="button" class="btn" disabled={!canAct || requester} onClick={startEdit}>
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
            {!scoped && (
              <div class="nav-next">
                <button type="button" class="btn btn-quiet" ref={nextButton} onClick={() => go(1)}>
                  Next review <Kbd>n</Kbd>
                </button>
              </div>
            )}
          </section>
        </aside>
      </div>
    </article>
  );
}
