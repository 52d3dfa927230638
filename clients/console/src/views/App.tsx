import { useEffect, useRef, useState } from "preact/hooks";
import type { Caller } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { failing } from "../connection";
import { useKeys } from "../keys";
import { pendingLink, scopedReview } from "../email";
import { linkClick, navigate, reviewPath, route as routeStore } from "../router";
import { groupsText, isAuditor, queue as queueStore, session as sessionStore, signIn, signOut } from "../session";
import { useStore } from "../store";
import { getToken } from "../api";
import { AuditPage } from "./AuditPage";
import { Kbd, Notice } from "./common";
import { EmailLanding } from "./EmailLanding";
import { GrantsPage } from "./GrantsPage";
import { Help } from "./Help";
import { InsightsPage } from "./InsightsPage";
import { QueuePage } from "./QueuePage";
import { ReviewPage } from "./ReviewPage";
import { SignIn } from "./SignIn";

export function App() {
  const s = useStore(sessionStore);
  const link = useStore(pendingLink);
  if (s.state === "signed-in") return <Console caller={s.caller} />;
  if (link) return <EmailLanding link={link} checking={s.state === "checking"} />;
  if (s.state === "unreachable") {
    return (
      <main id="main" class="signin">
        <section class="card" aria-labelledby="down-title">
          <h1 id="down-title">Signoff is not reachable</h1>
          <Notice kind="error" alert>
            {s.error}
          </Notice>
          <div class="buttons">
            <button type="button" class="btn btn-primary" onClick={() => signIn(getToken())}>
              Try again
            </button>
            <button type="button" class="btn" onClick={() => signOut()}>
              Sign in with another token
            </button>
          </div>
        </section>
      </main>
    );
  }
  return <SignIn error={s.state === "signed-out" ? s.error : undefined} checking={s.state === "checking"} />;
}

/** A session from an e-mail link: its one review, and nothing else to navigate to. */
function ScopedConsole({ caller, only }: { caller: Caller; only: string }) {
  const r = useStore(routeStore);
  const page =
    r.name === "review" && r.id === only ? (
      <ReviewPage key={r.id} id={r.id} caller={caller} />
    ) : (
      <Notice kind="info" alert>
        This session, opened from an e-mail link, is for one review only.{" "}
        <a href={reviewPath(only)} onClick={linkClick}>
          Open it
        </a>
      </Notice>
    );
  return (
    <>
      <header class="top">
        <nav aria-label="Console">
          <span class="brand">Signoff</span>
        </nav>
        <div class="me">
          <span class="who" data-testid="whoami">
            <strong>{caller.id}</strong> <span class="sub">from an e-mail link, for this review only</span>
          </span>
          <button type="button" class="btn btn-quiet" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">{page}</main>
    </>
  );
}

function Console({ caller }: { caller: Caller }) {
  const only = scopedReview();
  if (only) return <ScopedConsole caller={caller} only={only} />;
  return <FullConsole caller={caller} />;
}

function FullConsole({ caller }: { caller: Caller }) {
  const r = useStore(routeStore);
  const q = useStore(queueStore);
  const down = useStore(failing);
  const [help, setHelp] = useState(false);
  const auditor = isAuditor(caller);
  useKeys({
    "?": () => setHelp(true),
    g: () => navigate("/"),
  });
  const firstRoute = useRef(r);
  useEffect(() => {
    // Moving between pages moves focus to the new page's heading (screen readers announce
    // it); a fresh page load keeps the browser's own start, so the skip link comes first.
    if (r === firstRoute.current) return;
    const h = document.querySelector<HTMLElement>("main h1");
    if (h) {
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    }
    scrollTo(0, 0);
  }, [r]);
  const pending = q.state === "live" ? q.queue.pending : undefined;
  const groups = groupsText(caller);
  let page;
  if (r.name === "queue") page = <QueuePage />;
  else if (r.name === "review") page = <ReviewPage key={r.id} id={r.id} caller={caller} />;
  else if (r.name === "audit") {
    page = auditor ? (
      <AuditPage params={r.params} />
    ) : (
      <Notice kind="info" alert>
        The audit log is for auditors and admins; {caller.id} has neither role.
      </Notice>
    );
  } else if (r.name === "insights") {
    page = auditor ? (
      <InsightsPage />
    ) : (
      <Notice kind="info" alert>
        Policy insights are for auditors and admins; {caller.id} has neither role.
      </Notice>
    );
  } else if (r.name === "grants") {
    page = <GrantsPage caller={caller} params={r.params} />;
  } else {
    page = (
      <Notice kind="info" alert>
        Nothing here ({r.path}).{" "}
        <a href="/" onClick={linkClick}>
          Go to the queue
        </a>
      </Notice>
    );
  }
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <nav aria-label="Console">
          <a class="brand" href="/" onClick={linkClick}>
            Signoff
          </a>
          <a href="/" onClick={linkClick} aria-current={r.name === "queue" ? "page" : undefined}>
            Queue{" "}
            <span class="count">{pending ?? "…"}</span>
            <span class="sr-only"> pending</span>
          </a>
          {caller.reviewerGroups.length > 0 && (
            <a href="/grants" onClick={linkClick} aria-current={r.name === "grants" ? "page" : undefined}>
              Standing approvals
            </a>
          )}
          {auditor && (
            <a href="/audit" onClick={linkClick} aria-current={r.name === "audit" ? "page" : undefined}>
              Audit
            </a>
          )}
          {auditor && (
            <a href="/insights" onClick={linkClick} aria-current={r.name === "insights" ? "page" : undefined}>
              Insights
            </a>
          )}
        </nav>
        <div class="me">
          <button type="button" class="btn btn-quiet" onClick={() => setHelp(true)} aria-haspopup="dialog">
            Shortcuts <Kbd>?</Kbd>
          </button>
          <span class="who" data-testid="whoami" title={`roles: ${caller.roles.join(", ")}`}>
            <strong>{caller.id}</strong>{" "}
            <span class="sub">
              {caller.reviewerGroups.length ? `reviews for ${groups}` : caller.roles.join(", ") || "no role"}
            </span>
          </span>
          <button type="button" class="btn btn-quiet" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <div class="banner-slot" role="status" aria-live="assertive">
        {down.size > 0 && (
          <p class="banner" data-testid="disconnected">
            Disconnected from Signoff — reconnecting… What you see may be out of date.
          </p>
        )}
      </div>
      <main id="main">{page}</main>
      <footer class="foot sub">
        Press <kbd>?</kbd> for keyboard shortcuts. Times left are measured on the server's clock.
      </footer>
      {help && <Help onClose={() => setHelp(false)} />}
    </>
  );
}
