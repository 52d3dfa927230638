// Built by scripts/build_console.py into service/signoff/console/static/ (committed), so that
// `pip install` + `signoff serve` need no Node. `npm run dev -w @signoff/console` serves it
// with hot reload and proxies the API to a local `signoff serve` (SIGNOFF_URL).
import { defineConfig } from "vite";

const api = process.env.SIGNOFF_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "/",
  publicDir: false,
  // Preact's automatic JSX runtime through Vite's own transformer: no plugin needed.
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    target: "es2022",
    assetsDir: "assets",
    sourcemap: false,
    reportCompressedSize: true,
    // One script and one stylesheet: the console is small, and the server's CSP allows only
    // same-origin scripts (no inline polyfill).
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { "^/signoff\\.v1\\.": { target: api, changeOrigin: true } },
  },
});
