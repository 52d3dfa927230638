// Single-key shortcuts. Pages register the keys they handle; nothing fires while typing in
// a field, or with Ctrl/Alt/Meta held (the browser's own shortcuts stay the browser's).
import { useLayoutEffect, useRef } from "preact/hooks";

type Handlers = Partial<Record<string, (e: KeyboardEvent) => void>>;

const layers: { current: Handlers }[] = [];

export function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  const tag = el.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable) return true;
  if (tag === "INPUT") {
    const type = (el as HTMLInputElement).type;
    return !["checkbox", "radio", "button", "submit", "reset"].includes(type);
  }
  return false;
}

addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
  if (isTyping(e.target)) return;
  // An open dialog takes every key, whatever registered after it: a page part that remounts
  // under the dialog (a live update) registers above it, and must not get an "a" meant for
  // nobody. Without a dialog, the most recently registered layer first.
  let modal = -1;
  for (let i = layers.length - 1; i >= 0 && modal < 0; i--) {
    if (layers[i].current["*modal"]) modal = i;
  }
  const order = modal >= 0 ? [modal] : layers.map((_, i) => layers.length - 1 - i);
  for (const i of order) {
    const fn = layers[i].current[e.key];
    if (fn) {
      e.preventDefault();
      fn(e);
      return;
    }
  }
});

/** Handle these keys while the component is mounted. */
export function useKeys(handlers: Handlers): void {
  const ref = useRef(handlers);
  ref.current = handlers;
  // A layout effect: registered as the component appears, before the next key press can
  // reach the page under it (a passive effect may run a frame later).
  useLayoutEffect(() => {
    layers.push(ref);
    return () => {
      const i = layers.indexOf(ref);
      if (i >= 0) layers.splice(i, 1);
    };
  }, []);
}

export const SHORTCUTS: [string, string][] = [
  ["a", "Approve the open review"],
  ["e", "Edit the params, then approve with edits"],
  ["r", "Reject the open review (needs a comment)"],
  ["j / n", "Next review in the queue"],
  ["k", "Previous review in the queue"],
  ["Enter", "Open the selected review"],
  ["g", "Back to the queue"],
  ["?", "Show or hide this help"],
  ["Esc", "Close help, or leave the params editor"],
];
