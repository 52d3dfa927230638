/**
 * Runs the Python client's pure modules (`signoff_client/canonical.py`, `_masking.py`,
 * standard library only) on the same inputs as the TypeScript port, so that the tests
 * compare with the implementation the server itself uses, not with copied expectations.
 */

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO, pythonBin } from "./server.js";

const SCRIPT = String.raw`
import importlib.util, json, sys

def load(name):
    path = sys.argv[1] + "/clients/python/signoff_client/" + name + ".py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

canonical, masking = load("canonical"), load("_masking")
job = json.load(sys.stdin)
out = {"canonical": [], "legacy": [], "digests": [], "masking": [], "fast": canonical.orjson is not None}
for text in job["canonical"]:
    try:
        out["canonical"].append({"ok": canonical.canonical_json(json.loads(text))})
    except ValueError as e:
        out["canonical"].append({"error": str(e)})
for text in job.get("legacy", []):
    out["legacy"].append(canonical.legacy_canonical_json(json.loads(text)))
for d in job["digests"]:
    out["digests"].append(canonical.action_digest(d["name"], d["params"], d.get("principal"), d.get("resource")))
for m in job["masking"]:
    masked = masking.mask(m["params"], m["paths"])
    unmasked = masking.unmask(m["edited"], m["params"], m["paths"])
    remasked = masking.remask(unmasked, m["edited"], m["paths"])
    out["masking"].append({"mask": masked, "unmask": unmasked, "remask": remasked})
# ensure_ascii: the answer survives any locale; the strings are compared, not the bytes.
json.dump(out, sys.stdout, ensure_ascii=True)
`;

export interface PythonJob {
  /** JSON texts, each parsed by Python's json.loads and canonicalized. */
  canonical: string[];
  /** JSON texts, each parsed by json.loads and given to legacy_canonical_json. */
  legacy?: string[];
  /** action_digest(name, params, principal, resource) with snake_case principal keys. */
  digests: { name: string; params: unknown; principal?: unknown; resource?: unknown }[];
  /** mask(params), unmask(edited, params), remask(unmasked, edited) over `paths`. */
  masking: { params: unknown; edited: unknown; paths: string[] }[];
}

export interface PythonAnswer {
  canonical: ({ ok: string } | { error: string })[];
  /** The pre-0.2.0 text, or null where it is the canonical one. */
  legacy: (string | null)[];
  /** Whether Python encoded with orjson (the server's path) or pure Python. */
  fast: boolean;
  digests: string[];
  masking: { mask: unknown; unmask: unknown; remask: unknown }[];
}

/** Run the Python implementation on `job`. */
export async function runPython(job: PythonJob): Promise<PythonAnswer> {
  const run = promisify(execFile);
  const child = run(pythonBin(), ["-c", SCRIPT, REPO], { maxBuffer: 16 << 20, cwd: join(REPO) });
  child.child.stdin!.end(JSON.stringify(job));
  const { stdout } = await child;
  return JSON.parse(stdout) as PythonAnswer;
}
