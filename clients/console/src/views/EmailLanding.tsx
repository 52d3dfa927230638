import { useEffect, useRef } from "preact/hooks";
import { type Link, redeemLink } from "../email";

/** Where an e-mail link lands: nothing happens until the reviewer presses the button. */
export function EmailLanding(props: { link: Link; checking: boolean }) {
  const { link, checking } = props;
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    document.title = "Open review · Signoff";
    button.current?.focus();
  }, []);
  return (
    <main id="main" class="signin">
      <section class="card" aria-labelledby="email-title">
        <h1 id="email-title">Open the review from your e-mail</h1>
        <p>
          This link signs you in as <strong>{link.reviewer}</strong> for review <code>{link.reviewId}</code> only.
          It works once; opening the review decides nothing, you approve or reject there.
        </p>
        <div class="buttons">
          <button
            type="button"
            ref={button}
            class="btn btn-primary"
            disabled={checking}
            onClick={() => void redeemLink(link)}
          >
            {checking ? "Opening…" : "Open the review"}
          </button>
        </div>
      </section>
    </main>
  );
}
