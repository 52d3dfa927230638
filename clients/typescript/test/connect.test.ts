// The client over the Connect protocol, to the server's HTTP port: from `fetch` (what the
// browser entry @signoff/client/web uses) and from Node's HTTP/1.1 stack.

import { describe, expect, test } from "vitest";
import { Outcome, ReviewState, Unauthenticated } from "../src/index.js";
import { createSignoffNodeClient, type SignoffNodeClient } from "../src/node.js";
import { createSignoffWebClient } from "../src/web.js";
import { WAIT_MS, clientFlows, refund, request, reviewOpened, useServer } from "./flows.js";

const h = useServer((server, token) => createSignoffWebClient({ baseUrl: server.httpUrl, token }));

describe("Connect from fetch (@signoff/client/web)", () => {
  clientFlows(h);

  test("JSON instead of binary works the same", async () => {
    const json = createSignoffWebClient({
      baseUrl: h.server.httpUrl,
      token: h.server.tokens.agent,
      transportOptions: { useBinaryFormat: false },
    });
    expect((await json.evaluate(request(10))).outcome).toBe(Outcome.AUTO_ALLOW);
    const { onReview, opened } = reviewOpened();
    const approved = json.require(request(770), { onReview, timeoutMs: WAIT_MS });
    const review = await h.reviewer.getReview((await opened).reviewId);
    await h.reviewer.modify(review, { ...review.request!.action!.params!, amount: 600 });
    expect((await approved).params).toEqual(refund(600));
  });

  test("a token from a function is asked for on every call", async () => {
    let calls = 0;
    const client = createSignoffWebClient({
      baseUrl: h.server.httpUrl,
      token: async () => {
        calls += 1;
        return calls === 1 ? "stale" : h.server.tokens.agent;
      },
    });
    await expect(client.evaluate(request(10))).rejects.toBeInstanceOf(Unauthenticated);
    expect((await client.evaluate(request(10))).outcome).toBe(Outcome.AUTO_ALLOW);
  });
});

describe("Connect from Node (createSignoffNodeClient protocol: connect)", () => {
  test("evaluate, require with a review, and a typed error", async () => {
    const make = (token: string): SignoffNodeClient =>
      createSignoffNodeClient({ baseUrl: h.server.httpUrl, protocol: "connect", token });
    const agent = make(h.server.tokens.agent);
    try {
      expect((await agent.evaluate(request(25_000))).outcome).toBe(Outcome.DENY);
      const { onReview, opened } = reviewOpened();
      const approved = agent.require(request(780), { onReview, timeoutMs: WAIT_MS });
      await h.reviewer.approve(await h.reviewer.getReview((await opened).reviewId));
      const approval = await approved;
      expect(approval.params).toEqual(refund(780));
      expect(approval.review?.state).toBe(ReviewState.APPROVED);
      const wrong = make("wrong");
      await expect(wrong.evaluate(request(10))).rejects.toBeInstanceOf(Unauthenticated);
      wrong.close();
    } finally {
      agent.close();
    }
  });
});
