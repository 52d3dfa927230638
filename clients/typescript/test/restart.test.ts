// Waiting survives the server: a watch that ends because the server stops (gracefully or
// killed) is reopened, with backoff, once it is back, and the agent gets the approval given
// after the restarts.

import { expect, test } from "vitest";
import { ReviewState } from "../src/index.js";
import { createSignoffNodeClient, type SignoffNodeClient } from "../src/node.js";
import { WAIT_MS, refund, request, reviewOpened, useServer } from "./flows.js";

const h = useServer(
  (server, token) => createSignoffNodeClient({ baseUrl: server.grpcUrl, token }),
  (client) => (client as SignoffNodeClient).close(),
);

test("require() keeps waiting through a graceful restart and a crash, then gets the approval", async () => {
  const { onReview, opened } = reviewOpened();
  const updates: ReviewState[] = [];
  let seen = 0;
  let next!: () => void;
  // Resolves when the watch has delivered one more state: after the first open, and after
  // each reconnect (the server sends the current state first).
  const delivered = (): Promise<void> => {
    const want = seen + 1;
    return new Promise<void>((resolve) => {
      next = () => {
        if (seen >= want) resolve();
      };
      next();
    });
  };
  let waitFor = delivered();
  const approved = handled(
    h.agent.require(request(1_500), {
      onReview,
      timeoutMs: 3 * WAIT_MS,
      onUpdate: (r) => {
        updates.push(r.state);
        seen += 1;
        next();
      },
    }),
  );
  const { reviewId } = await opened;
  await waitFor; // watching

  // SIGTERM: the server ends the open stream at its shutdown grace (an HTTP/2 CANCEL).
  waitFor = delivered();
  await h.server.restart();
  await waitFor; // watching again, on the new process

  // SIGKILL: the connection just drops.
  waitFor = delivered();
  await h.server.restart({ crash: true });
  await waitFor;

  const review = await h.reviewer.getReview(reviewId);
  expect(review.state).toBe(ReviewState.PENDING);
  await h.reviewer.approve(review);

  const approval = await approved;
  expect(approval.review?.reviewId).toBe(reviewId);
  expect(approval.params).toEqual(refund(1_500));
  // The current state on each of the three opens, then the approval.
  expect(updates.filter((s) => s === ReviewState.PENDING).length).toBeGreaterThanOrEqual(3);
  expect(updates.at(-1)).toBe(ReviewState.APPROVED);
  expect(h.server.logs.filter((l) => l.event === "server.started")).toHaveLength(3);
});

/** `p`, marked as handled: a failure shows at `await`, not as an unhandled rejection first. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}
