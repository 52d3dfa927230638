// "Also allow similar actions": the standing approval a reviewer may grant with an approval.
// The server says whether it may and what to propose (Review.grant_offer); the reviewer edits
// duration, uses, principal and bounds, and sees the scope in the server's words.
import type { GrantOffer } from "../../../typescript/src/gen/signoff/v1/review_pb.js";
import { type Draft, type DraftBound, draftFrom, type Op, preview, presets, problem } from "../grants";

export function GrantForm(props: {
  offer: GrantOffer | undefined;
  draft: Draft | null;
  setDraft: (d: Draft | null) => void;
  error: string; // the server's refusal of the last attempt
  action: string;
  principal: string;
  busy: boolean;
}) {
  const { offer, draft, setDraft } = props;
  if (!offer) return null;
  if (!offer.allowed) {
    return (
      <p class="sub grant-refusal" data-testid="grant-refusal">
        No standing approval here: {offer.refusal}.
      </p>
    );
  }
  const open = draft !== null;
  const local = draft ? problem(draft, offer) : "";
  const words = draft ? preview(draft, offer, props.action, props.principal) : "";
  const set = (patch: Partial<Draft>) => draft && setDraft({ ...draft, ...patch });
  const setBound = (i: number, patch: Partial<DraftBound>) =>
    draft && set({ bounds: draft.bounds.map((b, j) => (j === i ? { ...b, ...patch } : b)) });
  const badBound = /^grant\.bounds\[(\d+)\]/.exec(props.error)?.[1];
  return (
    <fieldset class="grant" data-testid="grant-form">
      <legend class="sr-only">Standing approval</legend>
      <label class="check">
        <input
          type="checkbox"
          checked={open}
          disabled={props.busy}
          onChange={(e) => setDraft((e.target as HTMLInputElement).checked ? (draft ?? draftFrom(offer)) : null)}
        />
        Also allow similar actions (standing approval)
      </label>
      {open && draft && (
        <div class="grant-body">
          <div class="grant-row">
            <label>
              For
              <select aria-label="Grant duration" value={draft.ttl} onChange={(e) => set({ ttl: (e.target as HTMLSelectElement).value })}>
                {presets(offer).map(([s, text]) => (
                  <option key={s} value={String(s)}>
                    {text}
                  </option>
                ))}
                <option value="custom">custom…</option>
              </select>
            </label>
            {draft.ttl === "custom" && (
              <label>
                Custom
                <input
                  type="text"
                  aria-label="Custom duration"
                  placeholder="e.g. 90m, 12h"
                  size={7}
                  value={draft.custom}
                  onInput={(e) => set({ custom: (e.target as HTMLInputElement).value })}
                />
              </label>
            )}
            <label>
              Max uses
              <input
                type="number"
                min={1}
                max={offer.maxUses}
                aria-label="Max uses"
                value={draft.uses}
                onInput={(e) => set({ uses: (e.target as HTMLInputElement).value })}
              />
            </label>
          </div>
          <div class="grant-row" role="radiogroup" aria-label="Principal">
            <label class="check">
              <input type="radio" name="grant-principal" checked={!draft.anyPrincipal} onChange={() => set({ anyPrincipal: false })} />
              {props.principal} only
            </label>
            <label class="check">
              <input type="radio" name="grant-principal" checked={draft.anyPrincipal} onChange={() => set({ anyPrincipal: true })} />
              any principal
            </label>
          </div>
          <table class="bounds" aria-label="Bounds on params">
            <tbody>
              {draft.bounds.map((b, i) => (
                <tr key={b.path} data-testid={`bound-${b.path}`} class={badBound === String(i) ? "bound-refused" : undefined}>
                  <th scope="row">
                    <code>{b.path}</code>
                  </th>
                  <td>
                    <select
                      aria-label={`${b.path} operator`}
                      value={b.op}
                      disabled={b.kind !== "number"}
                      onChange={(e) => setBound(i, { op: (e.target as HTMLSelectElement).value as Op })}
                    >
                      {(b.kind === "number" ? ["<=", ">=", "=="] : ["=="]).map((op) => (
                        <option key={op}>{op}</option>
                      ))}
                    </select>
                  </td>
                  <td>
                    <BoundInput b={b} onText={(text) => setBound(i, { text })} />
                  </td>
                  <td>
                    <button
                      type="button"
                      class="btn btn-quiet btn-small"
                      aria-label={`Remove bound ${b.path}`}
                      onClick={() => set({ bounds: draft.bounds.filter((_, j) => j !== i) })}
                    >
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {draft.bounds.length < offer.defaultBounds.length && (
            <button type="button" class="btn btn-quiet btn-small" onClick={() => set({ bounds: draftFrom(offer).bounds })}>
              Restore suggested bounds
            </button>
          )}
          <div aria-live="polite">
            {words ? (
              <p class="grant-preview" data-testid="grant-preview">
                Approving also allows: {words}.
              </p>
            ) : (
              <p class="field-error">{local}</p>
            )}
            {props.error && (
              <p class="field-error" role="alert" data-testid="grant-error">
                Signoff refused the standing approval: {props.error}
              </p>
            )}
          </div>
        </div>
      )}
    </fieldset>
  );
}

function BoundInput(props: { b: DraftBound; onText: (t: string) => void }) {
  const { b } = props;
  const label = `${b.path} value`;
  if (b.kind === "null") return <code>null</code>;
  if (b.kind === "boolean") {
    return (
      <select aria-label={label} value={b.text} onChange={(e) => props.onText((e.target as HTMLSelectElement).value)}>
        <option>true</option>
        <option>false</option>
      </select>
    );
  }
  return (
    <input
      type="text"
      inputMode={b.kind === "number" ? "decimal" : undefined}
      aria-label={label}
      size={10}
      value={b.text}
      onInput={(e) => props.onText((e.target as HTMLInputElement).value)}
    />
  );
}
