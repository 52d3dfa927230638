/**
 * A support agent that issues refunds only as Signoff allows: the Node twin of
 * examples/refund_agent.py.
 *
 *     cd clients && npm run build -w @signoff/client
 *     node typescript/dist/examples/agent.js --amount 750
 *
 * Refunds up to 500 go through at once, larger ones wait for a finance reviewer, and
 * anything over 10,000 is denied (policies/refunds.yaml). The refund itself is a stand-in:
 * it prints what it would execute. Exit status: 0 executed, 1 not approved, 3 unreachable.
 *
 * Options: --server (default $SIGNOFF_SERVER or 127.0.0.1:50051, the gRPC port), --amount,
 * --account, --card-number, --ticket, --timeout (seconds to wait), --request-id (run again
 * with the same one to resume waiting on the same review), --principal (the agent's
 * identity, default $SIGNOFF_PRINCIPAL). The token is $SIGNOFF_TOKEN; in dev mode (no auth
 * configured) it is simply the caller's name, "support-bot" by default, and is also the
 * default principal. With a tokens file, set SIGNOFF_PRINCIPAL to the token's identity.
 */

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import {
  DeadlineExceeded,
  NotApproved,
  Unavailable,
  gate,
  type Decision,
} from "@signoff/client";
import { createSignoffNodeClient } from "@signoff/client/node";

const DEFAULT_SERVER = "127.0.0.1:50051";
const DEFAULT_TOKEN = "support-bot";

type Refund = { account: string; amount: number; currency: string; card_number: string };

function card(num: string): string {
  return `card ending ${num.slice(-4)}`;
}

function waiting(decision: Decision): void {
  console.log(`waiting for a ${decision.reviewerGroup} reviewer: ${decision.reason}`);
  console.log(`  review ${decision.reviewId}`);
  console.log(`  approve: signoff reviews approve ${decision.reviewId} --token alice`);
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      server: { type: "string", default: process.env.SIGNOFF_SERVER ?? DEFAULT_SERVER },
      amount: { type: "string", default: "750" },
      account: { type: "string", default: "acct_42" },
      "card-number": { type: "string", default: "4111 1111 1111 1111" },
      ticket: { type: "string", default: "T-1234" },
      timeout: { type: "string", default: "600" },
      "request-id": { type: "string" },
      principal: { type: "string", default: process.env.SIGNOFF_PRINCIPAL },
    },
  });
  const amount = Number(args.amount);
  const timeout = Number(args.timeout);
  if (!Number.isFinite(amount) || !(timeout > 0)) {
    console.error("--amount must be a number and --timeout a positive number of seconds");
    return 2;
  }
  const token = process.env.SIGNOFF_TOKEN ?? DEFAULT_TOKEN;
  const principal = args.principal ?? token; // in dev mode the token is the caller's name
  const requestId = args["request-id"] ?? `${args.ticket}:${randomUUID().slice(0, 8)}`;
  const signoff = createSignoffNodeClient({ baseUrl: args.server, token });
  try {
    const issueRefund = gate(
      signoff,
      "refund.issue",
      // Runs only with approved params: a reviewer's edits included, and the real card
      // number (reviewers only ever saw it masked).
      (r: Refund) => `refunded ${r.amount} ${r.currency} to ${r.account}, ${card(r.card_number)}`,
      {
        principal: { id: principal, kind: "agent" },
        resource: (r) => ({ kind: "account", id: r.account }),
        context: { ticket: args.ticket },
        justification: "Customer was charged twice for the same order.",
        requestId,
        timeoutMs: timeout * 1000,
        onReview: waiting,
      },
    );
    console.log(`refund ${amount} EUR to ${args.account} (request ${requestId})`);
    let done: string;
    try {
      done = await issueRefund({
        account: args.account,
        amount,
        currency: "EUR",
        card_number: args["card-number"],
      });
    } catch (e) {
      if (e instanceof NotApproved) {
        // Denied, Rejected, Expired, Cancelled, ReviewTimeout, DigestMismatch
        console.log(`not executed: ${e.message}`);
        return 1;
      }
      if (e instanceof Unavailable || e instanceof DeadlineExceeded) {
        console.log(`not executed: Signoff did not answer (${e.message})`);
        return 3;
      }
      throw e;
    }
    console.log(`executed: ${done}`);
    return 0;
  } finally {
    signoff.close();
  }
}

process.exitCode = await main();
