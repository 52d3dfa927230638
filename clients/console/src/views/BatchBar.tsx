import { useState } from "preact/hooks";
import type { Review } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { Verdict } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { messageOf, reviews } from "../api";
import { short } from "../format";
import { Notice } from "./common";

/** What a batch must share: the action and the deciding rules (shadow rules decide nothing),
 * compared as the server compares them. */
export function batchKey(r: Review): string {
  const rules = r.matchedRules
    .filter((m) => !m.shadow)
    .map((m) => `${m.policy}/${m.rule}`)
    .sort();
  return `${r.request?.action?.name ?? ""}|${rules.join(",")}`;
}

type Outcome = { kind: "success" | "warning" | "error"; text: string };

/** "3 selected", one comment, Approve selected / Reject selected: one SubmitReviews act. Each
 * review goes at the version shown in the queue, so one that changed is refused alone. */
export function BatchBar(props: { selected: Review[]; onDone: () => void }) {
  const [comment, setComment] = useState("");
  const [commentError, setCommentError] = useState("");
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const n = props.selected.length;

  const submit = async (verdict: Verdict) => {
    if (verdict === Verdict.REJECT && !comment.trim()) {
      setCommentError("Say why you reject: every agent and the audit log get this comment.");
      return;
    }
    setCommentError("");
    setBusy(true);
    setOutcome(null);
    try {
      const res = await reviews.submitReviews({
        reviews: props.selected.map((r) => ({ reviewId: r.reviewId, expectedVersion: r.version })),
        verdict,
        comment: comment.trim(),
      });
      const refused = res.results.filter((x) => x.errorCode);
      const done = verdict === Verdict.APPROVE ? "approved" : "rejected";
      const head = `${res.succeeded} of ${res.results.length} ${done}.`;
      const why = refused.map((x) => `Review ${short(x.reviewId)} not acted on: ${x.errorMessage}`);
      setOutcome({ kind: refused.length ? "warning" : "success", text: [head, ...why].join(" ") });
      setComment("");
      props.onDone();
    } catch (err) {
      setOutcome({ kind: "error", text: `Not recorded: ${messageOf(err)}` });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="batch-bar">
      {n > 0 && (
        <form class="batch-form" aria-label="Act on the selected reviews" onSubmit={(e) => e.preventDefault()}>
          <span data-testid="batch-count">{n} selected</span>
          <label>
            Batch comment
            <input
              type="text"
              value={comment}
              maxLength={4096}
              aria-invalid={!!commentError}
              onInput={(e) => setComment((e.target as HTMLInputElement).value)}
            />
          </label>
          <button type="button" class="btn btn-approve" disabled={busy} onClick={() => submit(Verdict.APPROVE)}>
            Approve selected
          </button>
          <button type="button" class="btn btn-reject" disabled={busy} onClick={() => submit(Verdict.REJECT)}>
            Reject selected
          </button>
          {commentError && <span class="field-error">{commentError}</span>}
        </form>
      )}
      {outcome && (
        <Notice kind={outcome.kind} alert>
          {outcome.text}
        </Notice>
      )}
    </div>
  );
}
