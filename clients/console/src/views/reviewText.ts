// What the review page says: why the caller may not act, what changed while it was open,
// what an act did, and why an act was not recorded.
import type { Caller, Review, ReviewAct } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { ReviewState, Verdict } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { type ConnectError, messageOf } from "../api";
import { stamp, stateText, verdictText } from "../format";
import { groupsText, reviewsFor } from "../session";

/** True if the caller may settle `r` as the person the agent asked for (its rule says
 * `in_band: requester`; the server checks it again): approve or reject only, never edit. */
export function inBandRequester(r: Review, caller: Caller): boolean {
  const p = r.request?.principal;
  return (
    r.inBand === "requester" &&
    r.approvalsRequired === 1 &&
    !!p &&
    !!caller.id &&
    p.onBehalfOf === caller.id &&
    p.id !== caller.id
  );
}

export function whyNot(r: Review, caller: Caller): string {
  if (r.state !== ReviewState.PENDING) return "resolved";
  if (inBandRequester(r, caller)) return "";
  const p = r.request?.principal;
  // The server refuses the claimed on_behalf_of too (a claim only makes approving harder).
  if (p && [p.id, p.onBehalfOf, p.claimed?.onBehalfOf].includes(caller.id)) {
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

export function describeChange(prev: Review, now: Review): string {
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

export function doneText(r: Review, verdict: Verdict): string {
  const what = verdict === Verdict.MODIFY ? "Approved with edits" : verdict === Verdict.REJECT ? "Rejected" : "Approved";
  if (r.state === ReviewState.PENDING) {
    const n = r.acts.filter((a) => a.verdict !== Verdict.REJECT).length;
    return `${what}. ${n} of ${r.approvalsRequired} approvals: the review waits for another reviewer.`;
  }
  return `${what}: the review is ${stateText(r.state)} and the agent has been told.`;
}

export function staleText(now: Review | null, e: ConnectError): string {
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
