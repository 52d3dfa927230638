// The Connect transport to the server that served this page, with the signed-in token.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuditService } from "../../typescript/src/gen/signoff/v1/audit_pb.js";
import { PolicyService } from "../../typescript/src/gen/signoff/v1/policy_pb.js";
import { ReviewService } from "../../typescript/src/gen/signoff/v1/review_pb.js";

const TOKEN_KEY = "signoff.token";

/** The token of this tab's session ("" when signed out). Kept in sessionStorage only. */
export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => (req) => {
  const token = getToken();
  if (token && !req.header.has("Authorization")) req.header.set("Authorization", `Bearer ${token}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

export const reviews = createClient(ReviewService, transport);
export const audit = createClient(AuditService, transport);
export const policies = createClient(PolicyService, transport);

export function asConnectError(err: unknown): ConnectError {
  return ConnectError.from(err);
}

/** Codes that say something about the request or the caller; anything else (a refused
 * connection, a reset stream, a 503 while the server restarts) is the network's fault and
 * worth retrying. */
const FINAL_CODES = new Set<Code>([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
]);

export function isTransient(err: ConnectError): boolean {
  return !FINAL_CODES.has(err.code);
}

/** The server's message without Connect's "[code] " prefix. */
export function messageOf(err: unknown): string {
  const e = asConnectError(err);
  return e.rawMessage || e.message;
}

export { Code, ConnectError };
