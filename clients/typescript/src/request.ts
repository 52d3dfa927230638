/**
 * From what callers pass to `signoff.v1.ActionRequest` messages, checking values first so
 * that an error names the field the caller wrote (the server would refuse them too, later
 * and less precisely). A port of the Python client's `_request` and `_struct`.
 */

import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ActionRequestSchema,
  type ActionRequest,
  type PrincipalSchema,
  type ResourceSchema,
} from "./gen/signoff/v1/common_pb.js";
import { InvalidArgument } from "./errors.js";
import { checkUnicode } from "./canonical.js";

/** Who is asking: in CEL, the variable `principal`. */
export interface PrincipalInput {
  id: string;
  /** "agent", "user" or "service". */
  kind?: string;
  roles?: readonly string[];
  tags?: readonly string[];
  /** The user the agent acts for (separation of duties). */
  onBehalfOf?: string;
  attributes?: JsonObject;
}

/** What the action touches: in CEL, the variable `resource`. */
export interface ResourceInput {
  kind?: string;
  id?: string;
  attributes?: JsonObject;
}

/** One action request, as `evaluate`, `explain` and `require` take it. */
export interface ActionInput {
  /** Dotted verb, e.g. "refund.issue". */
  action: string;
  /** The tool call's arguments, exactly as the agent would execute them. */
  params?: JsonObject;
  /** A principal id, or the whole principal. */
  principal?: string | PrincipalInput;
  resource?: ResourceInput;
  /** Anything else: ticket id, conversation summary, links, risk scores. */
  context?: JsonObject;
  /** The agent's own words on why it wants to act (shown to reviewers). */
  justification?: string;
  /**
   * Idempotency key; the same key returns the same decision (and review). Generated when
   * missing; give one derived from the task (e.g. the tool call id) so that a restarted
   * agent resumes waiting on the same review.
   */
  requestId?: string;
}

const PRINCIPAL_KEYS = new Set(["id", "kind", "roles", "tags", "onBehalfOf", "attributes"]);
const RESOURCE_KEYS = new Set(["kind", "id", "attributes"]);
const INPUT_KEYS = new Set([
  "action",
  "params",
  "principal",
  "resource",
  "context",
  "justification",
  "requestId",
]);

/** Return a fresh idempotency key (a random version 4 UUID). */
export function newRequestId(): string {
  const c = globalThis.crypto;
  // randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
  if (typeof c.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Return the ActionRequest for `input`; a missing requestId is generated if `withId`. */
export function toActionRequest(input: ActionInput, path = "", withId = true): ActionRequest {
  if (!isObject(input)) throw new InvalidArgument(`expected an object, got ${kind(input)}`, { field: path });
  checkKeys(input, INPUT_KEYS, path);
  if (typeof input.action !== "string") {
    throw new InvalidArgument(`expected a string, got ${kind(input.action)}`, {
      field: join(path, "action.name"),
    });
  }
  const justification = input.justification ?? "";
  checkString(justification, join(path, "justification"));
  let requestId = input.requestId ?? "";
  checkString(requestId, join(path, "request_id"));
  if (!requestId && withId) requestId = newRequestId();
  const init: MessageInitShape<typeof ActionRequestSchema> = {
    requestId,
    action: { name: input.action, params: optionalStruct(input.params, join(path, "action.params")) },
    principal: principal(input.principal, join(path, "principal")),
    resource: resource(input.resource, join(path, "resource")),
    context: optionalStruct(input.context, join(path, "context")),
    justification,
  };
  return create(ActionRequestSchema, init);
}

function principal(value: unknown, path: string): MessageInitShape<typeof PrincipalSchema> | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return { id: value };
  if (!isObject(value)) {
    throw new InvalidArgument(`expected a string or an object, got ${kind(value)}`, { field: path });
  }
  checkKeys(value, PRINCIPAL_KEYS, path);
  const p = value as Partial<PrincipalInput>;
  for (const [name, wire] of [["id", "id"], ["kind", "kind"], ["onBehalfOf", "on_behalf_of"]] as const) {
    if (p[name] !== undefined) checkString(p[name], join(path, wire));
  }
  return {
    id: p.id ?? "",
    kind: p.kind ?? "",
    roles: strings(p.roles ?? [], join(path, "roles")),
    tags: strings(p.tags ?? [], join(path, "tags")),
    onBehalfOf: p.onBehalfOf ?? "",
    attributes: optionalStruct(p.attributes, join(path, "attributes")),
  };
}

function resource(value: unknown, path: string): MessageInitShape<typeof ResourceSchema> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new InvalidArgument(`expected an object, got ${kind(value)}`, { field: path });
  checkKeys(value, RESOURCE_KEYS, path);
  const r = value as Partial<ResourceInput>;
  if (r.kind !== undefined) checkString(r.kind, join(path, "kind"));
  if (r.id !== undefined) checkString(r.id, join(path, "id"));
  return {
    kind: r.kind ?? "",
    id: r.id ?? "",
    attributes: optionalStruct(r.attributes, join(path, "attributes")),
  };
}

/**
 * Return `value` checked to be a JSON object that a `google.protobuf.Struct` carries
 * exactly; throw InvalidArgument naming the bad key under `path` otherwise. Unset stays
 * unset (the server presents both alike to CEL).
 */
export function optionalStruct(value: unknown, path: string): JsonObject | undefined {
  if (value === undefined) return undefined;
  return checkStruct(value, path);
}

/** Return `value` if it is a JSON object fit for a Struct, else throw InvalidArgument. */
export function checkStruct(value: unknown, path: string): JsonObject {
  if (!isObject(value) || !isPlain(value)) {
    throw new InvalidArgument(`expected a JSON object, got ${kind(value)}`, { field: path });
  }
  checkJson(value, path, new Set());
  return value as JsonObject;
}

function checkJson(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
      try {
        checkUnicode(value);
      } catch (e) {
        throw new InvalidArgument((e as Error).message, { field: path });
      }
      return;
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw new InvalidArgument(`${value} is not a JSON number`, { field: path });
      return;
    case "object":
      break;
    default:
      throw new InvalidArgument(
        `${typeof value} is not a JSON value (use string, number, boolean, null, array or object)`,
        { field: path },
      );
  }
  if (value === null) return;
  if (seen.has(value)) throw new InvalidArgument("circular reference", { field: path });
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${path}[${i}]`, seen));
  } else if (isPlain(value)) {
    for (const [key, item] of Object.entries(value)) checkJson(item, keyPath(path, key), seen);
  } else {
    throw new InvalidArgument(`${value.constructor?.name ?? "object"} is not a JSON value`, { field: path });
  }
  seen.delete(value);
}

function strings(value: unknown, path: string): string[] {
  if (!Array.isArray(value)) throw new InvalidArgument(`expected an array of strings, got ${kind(value)}`, { field: path });
  value.forEach((item, i) => checkString(item, `${path}[${i}]`));
  return [...(value as string[])];
}

function checkString(value: unknown, path: string): asserts value is string {
  if (typeof value !== "string") throw new InvalidArgument(`expected a string, got ${kind(value)}`, { field: path });
}

function checkKeys(value: object, allowed: Set<string>, path: string): void {
  const unknown = Object.keys(value).filter((k) => !allowed.has(k)).sort();
  if (unknown.length) {
    throw new InvalidArgument(
      `unknown key ${JSON.stringify(unknown[0])} (expected one of ${[...allowed].sort().join(", ")})`,
      { field: path },
    );
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isPlain(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A field of the request: `path.name`, or `name` at the top. */
function join(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/**
 * The path of a key the caller wrote: `path.key` where it reads as an identifier,
 * `path["key"]` otherwise, so that it can be pasted back into code or a CEL expression.
 */
function keyPath(path: string, key: string): string {
  return IDENTIFIER.test(key) ? join(path, key) : `${path}[${JSON.stringify(key)}]`;
}
