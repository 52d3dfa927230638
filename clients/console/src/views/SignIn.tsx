import { useEffect, useRef, useState } from "preact/hooks";
import { signIn } from "../session";

export function SignIn(props: { error?: string; checking: boolean }) {
  const [token, setToken] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = "Sign in · Signoff";
    input.current?.focus();
  }, []);
  useEffect(() => {
    if (props.error) input.current?.select();
  }, [props.error]);
  return (
    <main id="main" class="signin">
      <form
        class="card"
        aria-labelledby="signin-title"
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) void signIn(token.trim());
        }}
      >
        <h1 id="signin-title">Sign in to Signoff</h1>
        <p class="sub">The reviewer console: decide what agents may do.</p>
        <label for="token">Access token</label>
        <input
          id="token"
          ref={input}
          type="password"
          autocomplete="off"
          required
          value={token}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={props.error ? "signin-error token-help" : "token-help"}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        />
        <p id="token-help" class="sub">
          Your token stays in this browser tab only (session storage) and goes to the server as a
          bearer token. On a dev server (no authentication configured) any name signs you in with
          every role.
        </p>
        <div id="signin-error" role="alert" aria-live="assertive">
          {props.error && <p class="notice notice-error">{props.error}</p>}
        </div>
        <button type="submit" class="btn btn-primary" disabled={props.checking || !token.trim()}>
          {props.checking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
