/**
 * Browsers: Signoff over the Connect protocol, to the server's HTTP port (`--http-listen`,
 * default 127.0.0.1:8080; the reviewer console's own origin when served by `signoff serve`).
 *
 *     import { createSignoffWebClient } from "@signoff/client/web";
 *     const signoff = createSignoffWebClient({ baseUrl: location.origin, token });
 *
 * Uses `fetch`, so it works in Node 20 too. Needs `@connectrpc/connect-web` installed.
 */

import { createConnectTransport, type ConnectTransportOptions } from "@connectrpc/connect-web";
import { SignoffClient, type SignoffClientOptions } from "./client.js";

export { createConnectTransport };

/** The default HTTP address of `signoff serve`. */
export const DEFAULT_HTTP_URL = "http://127.0.0.1:8080";

export interface WebClientOptions extends Omit<SignoffClientOptions, "transport"> {
  /** The server's HTTP origin (default http://127.0.0.1:8080). */
  baseUrl?: string;
  /** More options of `createConnectTransport` (interceptors, fetch, ...). */
  transportOptions?: Partial<ConnectTransportOptions>;
}

/**
 * A Connect transport to Signoff's HTTP port. Binary (protobuf) by default; pass
 * `useBinaryFormat: false` for JSON, easier to read in the browser's network tab.
 */
export function createSignoffConnectTransport(
  baseUrl: string = DEFAULT_HTTP_URL,
  options: Partial<ConnectTransportOptions> = {},
): ReturnType<typeof createConnectTransport> {
  return createConnectTransport({ useBinaryFormat: true, ...options, baseUrl });
}

/** A `SignoffClient` over the Connect protocol (fetch). */
export function createSignoffWebClient(options: WebClientOptions = {}): SignoffClient {
  const { baseUrl, transportOptions, ...rest } = options;
  return new SignoffClient({ ...rest, transport: createSignoffConnectTransport(baseUrl, transportOptions) });
}
