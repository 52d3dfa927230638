// History API routing: /, /reviews/<id>, /audit, /insights, /grants. The server answers index.html for them.
import { Store } from "./store";

export type Route =
  | { name: "queue" }
  | { name: "review"; id: string }
  | { name: "audit"; params: URLSearchParams }
  | { name: "insights" }
  | { name: "grants"; params: URLSearchParams }
  | { name: "missing"; path: string };

function parse(): Route {
  const path = location.pathname;
  if (path === "/" || path === "") return { name: "queue" };
  const m = /^\/reviews\/([^/]+)\/?$/.exec(path);
  if (m) return { name: "review", id: decodeURIComponent(m[1]) };
  if (path === "/audit" || path === "/audit/") {
    return { name: "audit", params: new URLSearchParams(location.search) };
  }
  if (path === "/insights" || path === "/insights/") return { name: "insights" };
  if (path === "/grants" || path === "/grants/") return { name: "grants", params: new URLSearchParams(location.search) };
  return { name: "missing", path };
}

export const route = new Store<Route>(parse());

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  route.set(parse());
}

addEventListener("popstate", () => route.set(parse()));

export function reviewPath(id: string): string {
  return `/reviews/${encodeURIComponent(id)}`;
}

/** An <a> click handler that navigates in-app (plain clicks only; new tabs still work). */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) {
    return;
  }
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? null;
  if (!a || a.target) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
