// Standing approvals of one reviewer group (ListGrants), each revocable at once (RevokeGrant).
import { useEffect, useState } from "preact/hooks";
import type { Caller, Grant } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { messageOf, reviews } from "../api";
import { ms, serverNow } from "../clock";
import { span, stamp } from "../format";
import { linkClick, navigate, reviewPath } from "../router";
import { Notice } from "./common";

/** What a grant can still do: "active", or why it cannot. */
function status(g: Grant): { active: boolean; text: string } {
  if (g.revokedAt) return { active: false, text: `revoked by ${g.revokedBy} at ${stamp(g.revokedAt)}` };
  if (g.uses >= g.maxUses) return { active: false, text: "used up" };
  const left = (ms(g.expiresAt) ?? 0) - serverNow();
  if (left <= 0) return { active: false, text: "expired" };
  return { active: true, text: `active, ${span(left)} left` };
}

export function GrantsPage(props: { caller: Caller; params: URLSearchParams }) {
  const { caller } = props;
  const every = caller.reviewerGroups.includes("*");
  const group = props.params.get("group") ?? (every ? "" : (caller.reviewerGroups[0] ?? ""));
  const inactive = props.params.get("all") === "1";
  const [typed, setTyped] = useState(group);
  const [list, setList] = useState<Grant[] | null>(null);
  const [error, setError] = useState("");
  const [done, setDone] = useState("");
  const [reload, setReload] = useState(0);

  const go = (g: string, all: boolean) => {
    const q = new URLSearchParams();
    if (g) q.set("group", g);
    if (all) q.set("all", "1");
    navigate(`/grants${q.toString() ? `?${q}` : ""}`, true);
  };

  useEffect(() => {
    document.title = "Standing approvals · Signoff";
    setTyped(group);
    if (!group) return;
    let gone = false;
    setError("");
    reviews
      .listGrants({ reviewerGroup: group, includeInactive: inactive })
      .then((res) => !gone && setList(res.grants))
      .catch((err) => {
        if (!gone) {
          setList(null);
          setError(messageOf(err));
        }
      });
    return () => {
      gone = true;
    };
  }, [group, inactive, reload]);

  return (
    <section aria-labelledby="grants-title">
      <div class="page-head">
        <h1 id="grants-title">Standing approvals</h1>
        <p class="sub">Granted by reviewers while approving; each allows later actions inside its scope without a review.</p>
      </div>
      <form
        class="card buttons"
        onSubmit={(e) => {
          e.preventDefault();
          go(typed.trim(), inactive);
        }}
      >
        <label class="check" for="g-group">
          Group
        </label>
        {every ? (
          <input id="g-group" type="text" value={typed} placeholder="group name" onInput={(e) => setTyped((e.target as HTMLInputElement).value)} />
        ) : (
          <select id="g-group" class="narrow-select" value={group} onChange={(e) => go((e.target as HTMLSelectElement).value, inactive)}>
            {caller.reviewerGroups.map((g) => (
              <option key={g}>{g}</option>
            ))}
          </select>
        )}
        <label class="check">
          <input type="checkbox" checked={inactive} onChange={(e) => go(group, (e.target as HTMLInputElement).checked)} />
          Include inactive (expired, used up, revoked)
        </label>
        {every && (
          <button type="submit" class="btn btn-primary">
            Show
          </button>
        )}
        <button type="button" class="btn" onClick={() => setReload((n) => n + 1)} disabled={!group}>
          Refresh
        </button>
      </form>
      {done && <Notice kind="success" alert>{done}</Notice>}
      {error && <Notice kind="error" alert>{error}</Notice>}
      {!group && <p class="muted">Name a group to see its standing approvals.</p>}
      {group && list && (
        <GrantTable
          grants={list}
          inactive={inactive}
          onRevoked={(g) => {
            setDone(`Revoked: ${g.description}. Later requests are reviewed as usual.`);
            setReload((n) => n + 1);
          }}
        />
      )}
    </section>
  );
}

function GrantTable(props: { grants: Grant[]; inactive: boolean; onRevoked: (g: Grant) => void }) {
  if (!props.grants.length) {
    return <p class="empty">{props.inactive ? "This group has no standing approvals." : "No active standing approvals in this group."}</p>;
  }
  return (
    <table class="entries grants" data-testid="grants">
      <caption class="sr-only">Standing approvals, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Allows</th>
          <th scope="col">Uses</th>
          <th scope="col">Until</th>
          <th scope="col">Granted by</th>
          <th scope="col">Status</th>
        </tr>
      </thead>
      <tbody>
        {props.grants.map((g) => (
          <Row key={g.grantId} g={g} onRevoked={props.onRevoked} />
        ))}
      </tbody>
    </table>
  );
}

function Row({ g, onRevoked }: { g: Grant; onRevoked: (g: Grant) => void }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const s = status(g);
  const revoke = async () => {
    setBusy(true);
    setError("");
    try {
      onRevoked(await reviews.revokeGrant({ grantId: g.grantId, reason: reason.trim() }));
      setAsking(false);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <tr data-grant-id={g.grantId}>
      <td>
        {g.description}
        <span class="sub block">
          rule {g.policy}/{g.rule} · <code>{g.grantId}</code>
        </span>
      </td>
      <td class="num">
        {g.uses} / {g.maxUses}
      </td>
      <td class="nowrap">{stamp(g.expiresAt)}</td>
      <td>
        {g.createdBy}
        <span class="sub block">
          approving{" "}
          <a href={reviewPath(g.reviewId)} onClick={linkClick}>
            this review
          </a>{" "}
          at {stamp(g.createdAt)}
        </span>
      </td>
      <td>
        <span class={s.active ? "" : "muted"}>{s.text}</span>
        {s.active && !asking && (
          <div>
            <button type="button" class="btn btn-reject btn-small" onClick={() => setAsking(true)}>
              Revoke
            </button>
          </div>
        )}
        {asking && (
          <form
            class="revoke-form"
            onSubmit={(e) => {
              e.preventDefault();
              void revoke();
            }}
          >
            <input
              type="text"
              aria-label="Reason for revoking"
              placeholder="reason (optional)"
              value={reason}
              onInput={(e) => setReason((e.target as HTMLInputElement).value)}
            />
            <button type="submit" class="btn btn-reject btn-small" disabled={busy}>
              Revoke now
            </button>
            <button type="button" class="btn btn-small" onClick={() => setAsking(false)}>
              Cancel
            </button>
          </form>
        )}
        {error && (
          <p class="field-error" role="alert">
            {error}
          </p>
        )}
      </td>
    </tr>
  );
}
