// Who is signed in, and the live queue of their groups (one WatchQueue for the whole app, so
// that the header count and "next review" work on every page).
import type { Caller, Queue } from "../../typescript/src/gen/signoff/v1/review_pb.js";
import { asConnectError, Code, getToken, messageOf, reviews, setToken } from "./api";
import { syncServerTime } from "./clock";
import { keepStreaming, sessionEnded } from "./connection";
import { Store } from "./store";

export type Session =
  | { state: "signed-out"; error?: string }
  | { state: "checking" }
  | { state: "unreachable"; error: string }
  | { state: "signed-in"; caller: Caller };

export const session = new Store<Session>({ state: "signed-out" });

export type QueueState =
  | { state: "loading" }
  | { state: "live"; queue: Queue }
  | { state: "none"; reason: string };

export const queue = new Store<QueueState>({ state: "loading" });

let stopQueue: (() => void) | undefined;

export function isAuditor(c: Caller): boolean {
  return c.roles.includes("auditor") || c.roles.includes("admin");
}

/** "finance, dba", "every group" (reviewer:*), or "no group". */
export function groupsText(c: Caller): string {
  if (c.reviewerGroups.includes("*")) return "every group";
  return c.reviewerGroups.length ? c.reviewerGroups.join(", ") : "no group";
}

export function reviewsFor(c: Caller, group: string): boolean {
  return c.reviewerGroups.includes("*") || c.reviewerGroups.includes(group);
}

/** Check `token` with WhoAmI; on success keep it for this tab and go live. */
export async function signIn(token: string): Promise<void> {
  session.set({ state: "checking" });
  try {
    const caller = await reviews.whoAmI({}, { headers: { Authorization: `Bearer ${token}` } });
    setToken(token);
    start(caller);
  } catch (err) {
    const e = asConnectError(err);
    if (e.code === Code.Unauthenticated) {
      setToken("");
      session.set({
        state: "signed-out",
        error: `Signoff did not accept this token: ${messageOf(e)}`,
      });
    } else if (e.code === Code.PermissionDenied) {
      setToken("");
      session.set({ state: "signed-out", error: `This token may not use the console: ${messageOf(e)}` });
    } else {
      session.set({ state: "unreachable", error: messageOf(e) });
    }
  }
}

/** On page load: the tab's token, if any, is checked again. */
export function resume(): void {
  const token = getToken();
  if (token) void signIn(token);
}

export function signOut(error?: string): void {
  stopQueue?.();
  stopQueue = undefined;
  setToken("");
  queue.set({ state: "loading" });
  session.set({ state: "signed-out", error });
}

sessionEnded.subscribe((why) => {
  if (why) {
    sessionEnded.set("");
    signOut(`Signed out: the server no longer accepts your token (${why}).`);
  }
});

function start(caller: Caller): void {
  session.set({ state: "signed-in", caller });
  stopQueue?.();
  if (getToken().startsWith("sos1.")) {
    // A session from an e-mail link sees its one review; the server refuses the queue.
    queue.set({ state: "none", reason: "This session, from an e-mail link, is for one review only." });
    return;
  }
  if (!caller.reviewerGroups.length && !isAuditor(caller)) {
    queue.set({
      state: "none",
      reason: `${caller.id} reviews for no group (roles: ${caller.roles.join(", ") || "none"}).`,
    });
    return;
  }
  queue.set({ state: "loading" });
  stopQueue = keepStreaming(
    "queue",
    (signal) => reviews.watchQueue({ limit: 200 }, { signal }),
    {
      message(q) {
        syncServerTime(q.serverTime);
        queue.set({ state: "live", queue: q });
      },
      fatal(e) {
        queue.set({ state: "none", reason: messageOf(e) });
      },
    },
  );
}
