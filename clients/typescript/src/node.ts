/**
 * Node: Signoff over gRPC (HTTP/2) to the server's gRPC port (`--listen`, default
 * 127.0.0.1:50051), or over the Connect protocol to its HTTP port.
 *
 *     import { createSignoffNodeClient } from "@signoff/client/node";
 *     const signoff = createSignoffNodeClient({ baseUrl: "http://127.0.0.1:50051", token });
 *     try { ... } finally { signoff.close(); }
 *
 * Needs `@connectrpc/connect-node` installed.
 */

import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  type GrpcTransportOptions,
} from "@connectrpc/connect-node";
import type { Transport } from "@connectrpc/connect";
import { SignoffClient, type SignoffClientOptions } from "./client.js";

export { createGrpcTransport, createConnectTransport };

/** The default gRPC address of `signoff serve`. */
export const DEFAULT_GRPC_URL = "http://127.0.0.1:50051";

export interface NodeClientOptions extends Omit<SignoffClientOptions, "transport"> {
  /**
   * Where the server listens: `http://host:port` for plain HTTP/2 (gRPC's "insecure"),
   * `https://host:port` for TLS. Default http://127.0.0.1:50051. Plain host:port is taken
   * as http://host:port.
   */
  baseUrl?: string;
  /** `grpc` (default) to the gRPC port, or `connect` to the HTTP port (HTTP/1.1). */
  protocol?: "grpc" | "connect";
  /** More options of the gRPC transport (TLS `nodeOptions`, interceptors, ...). */
  transportOptions?: Partial<GrpcTransportOptions>;
}

/** A Node `SignoffClient` that owns its HTTP/2 connection: `close()` it when done. */
export class SignoffNodeClient extends SignoffClient {
  private readonly sessions: Http2SessionManager | undefined;

  constructor(options: NodeClientOptions & { transport: Transport; sessions?: Http2SessionManager }) {
    super(options);
    this.sessions = options.sessions;
  }

  /** Close the connection; calls in flight fail with `Canceled`. */
  close(): void {
    this.sessions?.abort();
  }
}

/** Return `http://host:port` for a bare `host:port`, else `url` unchanged. */
export function normalizeBaseUrl(url: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
}

/** A Node client over gRPC (default) or the Connect protocol. */
export function createSignoffNodeClient(options: NodeClientOptions = {}): SignoffNodeClient {
  const { baseUrl = DEFAULT_GRPC_URL, protocol = "grpc", transportOptions = {}, ...rest } = options;
  const url = normalizeBaseUrl(baseUrl);
  if (protocol !== "grpc" && protocol !== "connect") {
    throw new RangeError(`protocol must be "grpc" or "connect", got ${String(protocol)}`);
  }
  if (protocol === "connect") {
    // The HTTP port speaks HTTP/1.1 (aiohttp), so Connect goes over HTTP/1.1 here.
    const { nodeOptions: _http2Only, sessionManager: _unused, ...connectOptions } = transportOptions;
    const transport = createConnectTransport({
      useBinaryFormat: true,
      ...connectOptions,
      baseUrl: url,
      httpVersion: "1.1",
    });
    return new SignoffNodeClient({ ...rest, transport });
  }
  // Our own session manager, so that close() can end the HTTP/2 connection.
  const sessions = new Http2SessionManager(url, transportOptions, transportOptions.nodeOptions);
  const transport = createGrpcTransport({ ...transportOptions, baseUrl: url, sessionManager: sessions });
  return new SignoffNodeClient({ ...rest, transport, sessions });
}
