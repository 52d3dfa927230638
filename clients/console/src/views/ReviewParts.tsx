// The parts of the review page: the params editor and its diff, acts, resolution, request
// details, precedents, and why a review could not be loaded.
import type { JsonObject } from "@bufbuild/protobuf";
import type { Principal } from "../../../typescript/src/gen/signoff/v1/common_pb.js";
import type { Caller, Review, ReviewAct } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { ReviewState } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { Code, type ConnectError, isTransient, messageOf } from "../api";
import { ms, serverNow } from "../clock";
import { channelText, literal, scalar, span, stamp, stateText, verdictText } from "../format";
import { type Change, diff, leaves, type parseParams } from "../jsonedit";
import { linkClick, reviewPath } from "../router";
import { groupsText } from "../session";
import { Kbd, KeyValues, Notice, StateBadge } from "./common";

export function Editor(props: {
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

export function Acts({ acts }: { acts: ReviewAct[] }) {
  return (
    <ol class="acts" aria-label="Acts so far">
      {acts.map((a, i) => (
        <li key={i}>
          <strong>{a.reviewer}</strong> {verdictText(a.verdict)} <span class="sub">{stamp(a.at)}</span>
          {a.inBand && <span class="sub"> (in band, by the requester)</span>}
          {channelText(a.channel) && <span class="sub"> ({channelText(a.channel)})</span>}
          {a.comment && <q class="comment">{a.comment}</q>}
        </li>
      ))}
    </ol>
  );
}

export function Resolution({ r }: { r: Review }) {
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

export function RequestDetails({ r }: { r: Review }) {
  const req = r.request;
  const p = req?.principal;
  const res = req?.resource;
  const claims = claimsText(p);
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
        {claims && (
          <>
            <dt>Claims</dt>
            <dd data-testid="claims">
              {claims} <span class="sub">(the agent's word, not vouched for)</span>
            </dd>
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

/** What the agent asserted that the deployment does not vouch for, in words ("" if nothing). */
function claimsText(p: Principal | undefined): string {
  const c = p?.claimed;
  if (!p || !c) return "";
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const parts: string[] = [];
  if (c.onBehalfOf && c.onBehalfOf !== p.onBehalfOf) parts.push(`on behalf of ${c.onBehalfOf}`);
  if (c.kind && c.kind !== p.kind) parts.push(`kind ${c.kind}`);
  if (c.roles.length && !same(c.roles, p.roles)) parts.push(`roles ${c.roles.join(", ")}`);
  if (c.tags.length && !same(c.tags, p.tags)) parts.push(`tags ${c.tags.join(", ")}`);
  return parts.join("; ");
}

export function Precedents({ list }: { list: Review[] | string | null }) {
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

export function LoadError({ id, error, caller }: { id: string; error: ConnectError; caller: Caller }) {
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
