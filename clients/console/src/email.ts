// E-mail links: /email#<link token>. Opening the page acts on nothing (mail scanners follow
// links); the token is traded once (POST /email/redeem) for a session on that one review,
// and the reviewer then approves, edits or rejects on the review's page as usual.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { getToken } from "./api";
import { syncServerTime } from "./clock";
import { navigate, reviewPath } from "./router";
import { session, signIn } from "./session";

const SESSION_PREFIX = "sos1.";

/** The review this tab's session is limited to ("" for an ordinary token). Read from the
 * session token's payload for the display only: the server enforces the limit. */
export function scopedReview(): string {
  const token = getToken();
  if (!token.startsWith(SESSION_PREFIX)) return "";
  try {
    const raw = token.slice(SESSION_PREFIX.length).split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    const id = (JSON.parse(atob(raw + "=".repeat((4 - (raw.length % 4)) % 4))) as { id?: unknown }).id;
    return typeof id === "string" ? id : "";
  } catch {
    return "";
  }
}

/** Trade the link's token for a session and open its review; say why when it cannot. */
export async function redeemLink(): Promise<void> {
  const token = location.hash.slice(1);
  // Out of the address bar and the history: the token is single use, but still a secret.
  history.replaceState(null, "", "/email");
  if (!token) {
    session.set({ state: "signed-out", error: "This e-mail link has no token in it. Sign in to open the review." });
    return;
  }
  session.set({ state: "checking" });
  let res: Response;
  try {
    res = await fetch("/email/redeem", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
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
