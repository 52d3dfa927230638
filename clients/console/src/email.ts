// E-mail links: /email#<link token>. Opening the page acts on nothing and uses nothing up
// (mail scanners follow links, some run their scripts): the reviewer presses "Open the
// review", which trades the token once (POST /email/redeem) for a session on that one
// review; there they approve, edit or reject as usual.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { getToken } from "./api";
import { syncServerTime } from "./clock";
import { navigate, reviewPath } from "./router";
import { session, signIn } from "./session";
import { Store } from "./store";

const LINK_PREFIX = "sol1.";
const SESSION_PREFIX = "sos1.";

export type Link = { token: string; reviewer: string; reviewId: string };

/** The link this page was opened with, until it is traded or refused. */
export const pendingLink = new Store<Link | null>(null);

/** The fields of a token's payload, for display only: the server checks the signature. */
function payloadOf(token: string, prefix: string): { r?: unknown; id?: unknown } {
  if (!token.startsWith(prefix)) return {};
  try {
    const raw = token.slice(prefix.length).split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(raw + "=".repeat((4 - (raw.length % 4)) % 4))) as { r?: unknown; id?: unknown };
  } catch {
    return {};
  }
}

/** The review this tab's session is limited to ("" for an ordinary token). For the
 * display only: the server enforces the limit. */
export function scopedReview(): string {
  const id = payloadOf(getToken(), SESSION_PREFIX).id;
  return typeof id === "string" ? id : "";
}

/** On loading /email: hold the link from the address for the reviewer to open. */
export function captureLink(): void {
  const token = location.hash.slice(1);
  const { r, id } = payloadOf(token, LINK_PREFIX);
  if (typeof r !== "string" || typeof id !== "string") {
    history.replaceState(null, "", "/email");
    session.set({ state: "signed-out", error: "This e-mail link is incomplete. Sign in to open the review." });
    return;
  }
  pendingLink.set({ token, reviewer: r, reviewId: id });
}

/** Trade the link's token for a session and open its review; say why when it cannot. */
export async function redeemLink(link: Link): Promise<void> {
  session.set({ state: "checking" });
  let res: Response;
  try {
    res = await fetch("/email/redeem", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: link.token }),
    });
  } catch (err) {
    session.set({ state: "unreachable", error: String(err) });
    return;
  }
  const body = (await res.json().catch(() => ({}))) as {
    session?: string;
    review_id?: string;
    server_time?: string;
    error?: string;
  };
  pendingLink.set(null);
  // Out of the address bar and the history: used up now, but a secret all the same.
  history.replaceState(null, "", "/email");
  if (!res.ok || !body.session || !body.review_id) {
    session.set({
      state: "signed-out",
      error: `This e-mail link cannot be used: ${body.error ?? res.statusText}. Sign in to open the review.`,
    });
    return;
  }
  const serverMs = Date.parse(body.server_time ?? "");
  if (!Number.isNaN(serverMs)) syncServerTime(timestampFromMs(serverMs));
  navigate(reviewPath(body.review_id), true);
  await signIn(body.session);
}
