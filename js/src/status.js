// The status line: the task's counts, the model's version and quality, and whether every label
// is saved (from src/link.js). Python owns the figures (traits); this only writes them out.
import { attr, h, setText } from "./dom.js";

const COUNTS = ["positives", "negatives", "skipped"];

/** @param {import("@anywidget/types").AnyModel} model @param {import("./link.js").Link} link */
export function createStatus(model, link) {
  /** @type {Record<string, HTMLElement>} */
  const counters = {};
  const counter = (name) => {
    counters[name] = h("span", { class: "va-count", "data-testid": `count-${name}` });
    return h("span", { class: `va-stat va-stat-${name}` }, [counters[name], ` ${name}`]);
  };
  const modelVersion = h("span", { "data-testid": "model-version" });
  const quality = h("span", { class: "va-quality", "data-testid": "quality" });
  const saved = h("span", { class: "va-saved", "data-testid": "saved-state" });
  const el = h("div", { class: "va-status", "data-testid": "status", "aria-live": "polite" }, [
    ...COUNTS.map(counter),
    h("span", { class: "va-stat" }, ["model v", modelVersion]),
    quality,
    saved,
  ]);

  /**
   * @param {HTMLElement} root gets the data attributes tests and tools read
   * @param {{ note?: string, failed?: boolean }} extra a transient note; the last event failed
   */
  function render(root, { note = "", failed = false } = {}) {
    const counts = model.get("counts");
    for (const name of COUNTS) setText(counters[name], String(counts[name] ?? 0));
    setText(modelVersion, String(model.get("model_version")));
    const q = model.get("quality");
    setText(quality, typeof q.ap === "number" ? `CV AP ${q.ap.toFixed(2)} (95% CI ${q.ci_low.toFixed(2)}–${q.ci_high.toFixed(2)})` : "CV AP: not enough labels");
    attr(quality, "title", q.reason ?? "");
    attr(quality, "data-n-labels", String((q.n_pos ?? 0) + (q.n_neg ?? 0))); // labels it reflects
    const state = link.pending > 0 ? "false" : failed ? "error" : "true";
    root.dataset.saved = state;
    root.dataset.pending = String(link.pending);
    root.dataset.link = link.state; // "ok" | "stalled" | "lost"
    root.dataset.lastSaved = model.get("last_saved");
    saved.dataset.saved = state;
    saved.dataset.link = link.state;
    const text = link.describe({ failed });
    setText(saved, note ? `${text} · ${note}` : text);
  }

  return { el, render };
}
