/**
 * The byte and hash helpers the verifiers share (merkle.ts, receipts.ts, auditProofs.ts):
 * WebCrypto's SHA-256 over concatenated parts, hex, and the key id every signed document
 * names its key by. Internal: not exported from the package.
 */

/** WebCrypto's SubtleCrypto; throws saying where it exists when it does not. */
export function subtleCrypto(): SubtleCrypto {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error("WebCrypto (crypto.subtle) is not available");
  return subtle;
}

/** A copy backed by a plain ArrayBuffer, as WebCrypto's types ask. */
export function owned(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

/** `parts` one after another, in a new buffer. */
export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** SHA-256 of `parts` concatenated. */
export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await subtleCrypto().digest("SHA-256", concat(...parts)));
}

/** Lowercase hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** First 16 hex characters of SHA-256 of the raw public key: how documents name a key. */
export async function keyId(key: CryptoKey): Promise<string> {
  const raw = new Uint8Array(await subtleCrypto().exportKey("raw", key));
  return hex(await sha256(raw)).slice(0, 16);
}
