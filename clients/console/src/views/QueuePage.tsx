import { useEffect, useRef, useState } from "preact/hooks";
import type { Queue, Review } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { durationMs, short } from "../format";
import { useKeys } from "../keys";
import { linkClick, navigate, reviewPath } from "../router";
import { queue as queueStore, type QueueState } from "../session";
import { useStore } from "../store";
import { BatchBar, batchKey } from "./BatchBar";
import { Age, Notice, TimeLeft } from "./common";

export function QueuePage() {
  const q = useStore(queueStore);
  useEffect(() => {
    document.title = "Queue · Signoff";
  }, []);
  return (
    <section aria-labelledby="queue-title">
      <div class="page-head">
        <h1 id="queue-title">Review queue</h1>
        <QueueSummary q={q} />
      </div>
      <QueueBody q={q} />
    </section>
  );
}

function QueueSummary({ q }: { q: QueueState }) {
  // The count is a live region: a screen reader hears "3 pending" change as reviews arrive.
  const text =
    q.state === "live"
      ? `${q.queue.pending} pending` +
        (q.queue.pending > q.queue.reviews.length ? ` (showing the oldest ${q.queue.reviews.length})` : "")
      : q.state === "loading"
        ? "Loading…"
        : "";
  return (
    <p class="queue-count" aria-live="polite" aria-atomic="true" data-testid="queue-count">
      {text}
    </p>
  );
}

function QueueBody({ q }: { q: QueueState }) {
  if (q.state === "none") return <Notice kind="info">No queue to show: {q.reason}</Notice>;
  if (q.state === "loading") return <p class="muted">Connecting to the live queue…</p>;
  return (
    <>
      <Groups queue={q.queue} />
      <QueueTable reviews={q.queue.reviews} />
    </>
  );
}

function Groups({ queue }: { queue: Queue }) {
  if (!queue.groups.length) return null;
  return (
    <ul class="groups" aria-label="Pending per reviewer group">
      {queue.groups.map((g) => (
        <li key={g.reviewerGroup} class="group-card">
          <span class="group-name">{g.reviewerGroup}</span>
          <span class="group-count">
            <strong>{g.pending}</strong> pending
          </span>
          <span class="group-meta">
            oldest waiting <Age since={g.oldestCreatedAt} />
          </span>
          {g.nextExpiresAt && (
            <span class="group-meta">
              next expiry <TimeLeft expires={g.nextExpiresAt} timeoutMs={0} />
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}

function QueueTable({ reviews }: { reviews: Review[] }) {
  const [selected, setSelected] = useState(0);
  // Ticked reviews, for one batch act; those that left the queue drop out by themselves.
  const [ticked, setTicked] = useState<ReadonlySet<string>>(new Set());
  const chosen = reviews.filter((r) => ticked.has(r.reviewId));
  const key = chosen.length ? batchKey(chosen[0]) : "";
  const toggle = (id: string, on: boolean) => {
    const next = new Set([...ticked].filter((t) => reviews.some((r) => r.reviewId === t)));
    if (on) next.add(id);
    else next.delete(id);
    setTicked(next);
  };
  const body = useRef<HTMLTableSectionElement>(null);
  const move = (step: number) => {
    const links = [...(body.current?.querySelectorAll<HTMLAnchorElement>("a.row-link") ?? [])];
    const at = links.indexOf(document.activeElement as HTMLAnchorElement);
    // The first press puts focus on the selected row; Enter then opens it.
    const n = Math.max(0, Math.min(links.length - 1, at < 0 ? selected : at + step));
    setSelected(n);
    links[n]?.focus();
  };
  useKeys({
    j: () => move(1),
    k: () => move(-1),
    n: () => reviews[0] && navigate(reviewPath(reviews[0].reviewId)),
  });
  // First child in both shapes, so its state (a batch's outcome notice) survives the queue
  // emptying: a batch that took the last reviews must still say what it did.
  const batchBar = <BatchBar selected={chosen} onDone={() => setTicked(new Set())} />;
  if (!reviews.length) {
    return (
      <>
        {batchBar}
        <div class="empty">
          <p>
            <strong>Nothing is waiting for you.</strong> New reviews appear here as agents ask;
            there is no need to reload.
          </p>
        </div>
      </>
    );
  }
  return (
    <>
    {batchBar}
    <table class="queue">
      <caption class="sr-only">Pending reviews, oldest first</caption>
      <thead>
        <tr>
          <th scope="col">
            <span class="sr-only">Select</span>
          </th>
          <th scope="col">Action</th>
          <th scope="col">Principal</th>
          <th scope="col">Reason</th>
          <th scope="col">Group</th>
          <th scope="col">Waiting</th>
          <th scope="col">Time left</th>
        </tr>
      </thead>
      <tbody ref={body}>
        {reviews.map((r, i) => (
          <QueueRow
            key={r.reviewId}
            r={r}
            selected={i === selected}
            onFocus={() => setSelected(i)}
            ticked={ticked.has(r.reviewId)}
            // A batch holds reviews of one action and rule: others cannot join it.
            tickable={!key || batchKey(r) === key}
            onTick={(on) => toggle(r.reviewId, on)}
          />
        ))}
      </tbody>
    </table>
    </>
  );
}

function QueueRow(props: {
  r: Review;
  selected: boolean;
  onFocus: () => void;
  ticked: boolean;
  tickable: boolean;
  onTick: (on: boolean) => void;
}) {
  const r = props.r;
  const req = r.request;
  const who = req?.principal;
  const href = reviewPath(r.reviewId);
  return (
    <tr
      class={props.selected ? "selected" : ""}
      data-review-id={r.reviewId}
      onClick={(e) => {
        if ((e.target as HTMLElement).closest("a, input, label")) return;
        navigate(href);
      }}
    >
      <td class="tick">
        <input
          type="checkbox"
          checked={props.ticked}
          disabled={!props.tickable && !props.ticked}
          title={props.tickable ? "" : "A batch holds reviews of one action and rule"}
          aria-label={`Select review ${short(r.reviewId)} for a batch`}
          onChange={(e) => props.onTick((e.target as HTMLInputElement).checked)}
        />
      </td>
      <td>
        <a class="row-link" href={href} onClick={linkClick} onFocus={props.onFocus}>
          {req?.action?.name || "(unnamed action)"}
        </a>
        <span class="sub">review {short(r.reviewId)}</span>
      </td>
      <td>
        {who?.id || "-"}
        {who?.onBehalfOf && <span class="sub">for {who.onBehalfOf}</span>}
      </td>
      <td class="why">{r.reason}</td>
      <td>{r.reviewerGroup}</td>
      <td>
        <Age since={r.createdAt} />
      </td>
      <td>
        <TimeLeft expires={r.expiresAt} timeoutMs={durationMs(r.timeout)} />
      </td>
    </tr>
  );
}
