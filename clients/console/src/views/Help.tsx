import { useEffect, useRef } from "preact/hooks";
import { SHORTCUTS, useKeys } from "../keys";

export function Help(props: { onClose: () => void }) {
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    close.current?.focus();
    return () => before?.focus?.();
  }, []);
  useKeys({ "*modal": () => undefined, Escape: props.onClose, "?": props.onClose });
  return (
    <div class="overlay" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div
        class="dialog card"
        role="dialog"
        aria-modal="true"
        aria-labelledby="help-title"
        onKeyDown={(e) => {
          // Keep Tab inside the dialog: it has one button.
          if (e.key === "Tab") {
            e.preventDefault();
            close.current?.focus();
          }
        }}
      >
        <h2 id="help-title">Keyboard shortcuts</h2>
        <p class="sub">They work anywhere except while you type in a field.</p>
        <table class="shortcuts">
          <tbody>
            {SHORTCUTS.map(([k, what]) => (
              <tr key={k}>
                <th scope="row">
                  {k.split(" / ").map((x, i) => (
                    <>
                      {i > 0 && " or "}
                      <kbd>{x}</kbd>
                    </>
                  ))}
                </th>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <button type="button" class="btn" ref={close} onClick={props.onClose}>
          Close
        </button>
      </div>
    </div>
  );
}
