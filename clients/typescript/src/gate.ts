/**
 * `gate`: put `require()` in front of a tool function.
 *
 *     const issueRefund = gate(signoff, "refund.issue", async (p) => refund(p), { principal: "support-bot" });
 *     await issueRefund({ account: "acct_42", amount: 750 });
 *
 * A call runs `require(action, <the call's params>, ...)` and then the function with the
 * approved params and nothing else: what runs is exactly what was approved (a reviewer's
 * edits included). Otherwise it rejects with the `NotApproved` error `require()` threw, and
 * the function does not run. Mirrors the Python client's `@gate`.
 */

import type { JsonObject } from "@bufbuild/protobuf";
import type { Approval } from "./approval.js";
import type { SignoffClient, RequireOptions } from "./client.js";
import type { ActionInput, PrincipalInput, ResourceInput } from "./request.js";

/** A value, or a function of the call's params returning it. */
export type GateOption<T, P> = T | ((params: P) => T);

export interface GateOptions<P extends JsonObject> extends RequireOptions {
  principal?: GateOption<string | PrincipalInput, P>;
  resource?: GateOption<ResourceInput, P>;
  context?: GateOption<JsonObject, P>;
  justification?: GateOption<string, P>;
  /** Give it as a function of the task (e.g. the tool call id) so that a restarted agent
   * resumes waiting on the same review. */
  requestId?: GateOption<string, P>;
}

/** Return `fn` gated by `client.require(action, ...)`; `fn` gets the approved params. */
export function gate<P extends JsonObject, R>(
  client: SignoffClient,
  action: string,
  fn: (params: P, approval: Approval) => R | Promise<R>,
  options: GateOptions<P> = {},
): (params: P) => Promise<R> {
  const { principal, resource, context, justification, requestId, ...require } = options;
  return async (params: P): Promise<R> => {
    const input: ActionInput = {
      action,
      params,
      principal: value(principal, params),
      resource: value(resource, params),
      context: value(context, params),
      justification: value(justification, params),
      requestId: value(requestId, params),
    };
    const approval = await client.require(input, require);
    return fn(approval.params as P, approval);
  };
}

function value<T, P>(option: GateOption<T, P> | undefined, params: P): T | undefined {
  return typeof option === "function" ? (option as (p: P) => T)(params) : option;
}
