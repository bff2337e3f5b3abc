// The status line, in plain words: labels so far, clips left in the feed, the model's estimated
// quality and its trend (with advice on when to stop, where the task gives one), a label budget
// as a progress bar, and whether every label is saved (src/link.js). Python owns the figures
// (traits); this only writes them out.
import { attr, h, setText } from "./dom.js";

const QUALITY_HELP =
  "Average precision (AP, 0 to 1): how well the model ranks clips that show the concept above " +
  "clips that do not. 1 is perfect; a random ranking scores about the share of positives.";

/**
 * The quality in words: the task's own summary when it gives one, else from the figures. The
 * estimate is refreshed once labelling pauses: while it is of an older model than `version`
 * (the model now), it says which one, so it never passes for the current model's.
 */
export function qualityText(q, version = q.model_version) {
  const text = q.summary
    ? q.summary
    : typeof q.ap !== "number"
      ? "quality: not enough labels yet (needs 2 positive and 2 negative)"
      : `estimated AP ${q.ap.toFixed(2)} (${q.ci_low.toFixed(2)}–${q.ci_high.toFixed(2)}), cross-validated on your labels`;
  const stale = typeof q.model_version === "number" && q.model_version !== version;
  return stale ? `${text} [as of model v${q.model_version}; updating when you pause]` : text;
}

/** @param {number} n */
const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;

/** @param {import("@anywidget/types").AnyModel} model @param {import("./link.js").Link} link */
export function createStatus(model, link) {
  const count = (name) => h("b", { class: "va-count", "data-testid": `count-${name}` });
  const counters = { positives: count("positives"), negatives: count("negatives"), skipped: count("skipped") };
  const labels = h("b", { "data-testid": "count-labels" });
  const tally = h("span", { class: "va-stat", "data-testid": "labels" }, [labels, " labels (", counters.positives, " positive, ", counters.negatives, " negative, ", counters.skipped, " skipped)"]);
  const left = h("span", { class: "va-stat", "data-testid": "feed-left" });
  const modelVersion = h("span", { "data-testid": "model-version" });
  const quality = h("span", { class: "va-quality", "data-testid": "quality" });
  const trend = h("span", { class: "va-trend", "data-testid": "quality-trend" });
  const advice = h("span", { class: "va-advice", "data-testid": "advice" });
  const bar = /** @type {HTMLProgressElement} */ (h("progress", { class: "va-target-bar", "data-testid": "target-bar" }));
  const barText = h("span", { "data-testid": "target-text" });
  const target = h("span", { class: "va-target", "data-testid": "target" }, [bar, barText]);
  const saved = h("span", { class: "va-saved", "data-testid": "saved-state" });
  const el = h("div", { class: "va-status", "data-testid": "status", "aria-live": "polite" }, [
    tally,
    left,
    h("span", { class: "va-stat", title: QUALITY_HELP }, ["model v", modelVersion, ": ", quality, trend]),
    advice,
    target,
    saved,
  ]);

  /**
   * @param {HTMLElement} root gets the data attributes tests and tools read
   * @param {{ note?: string, failed?: boolean }} extra a transient note; the last event failed
   */
  function render(root, { note = "", failed = false } = {}) {
    const counts = model.get("counts");
    for (const [name, node] of Object.entries(counters)) setText(node, String(counts[name] ?? 0));
    const n = (counts.positives ?? 0) + (counts.negatives ?? 0);
    setText(labels, n.toLocaleString("en"));
    const feed = model.get("feed");
    setText(left, feed === "review" ? `${plural(model.get("feed_left"), "labelled clip")} left to review` : `${plural(model.get("feed_left"), "clip")} left in ${feed}`);
    setText(modelVersion, String(model.get("model_version")));
    const q = model.get("quality");
    setText(quality, qualityText(q, model.get("model_version")));
    attr(quality, "title", q.reason ?? "");
    attr(quality, "data-n-labels", String((q.n_pos ?? 0) + (q.n_neg ?? 0))); // labels it reflects
    setText(trend, model.get("quality_trend") ? `, ${model.get("quality_trend")}` : "");
    setText(advice, q.advice ?? "");
    advice.hidden = !q.advice;
    const goal = model.get("target");
    target.hidden = !goal;
    if (goal) {
      bar.max = goal;
      bar.value = Math.min(n, goal);
      setText(barText, n >= goal ? ` ${n} of ${goal} labels: target reached` : ` ${n} of ${goal} labels`);
    }
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
