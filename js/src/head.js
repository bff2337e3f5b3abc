// The widget's head: the task, the text query, the feed selector and what ordered the clips.
import { attr, h, hasFocus, setText } from "./dom.js";

/**
 * What ordered the clips fetched last; a model that has retrained since is named too, as the
 * clips already loaded keep that order (their scores on the cards are the current model's).
 * @param {string} source e.g. "model v3" ("" when unknown)
 * @param {number} version the current model's version
 */
export function rankedBy(source, version) {
  if (!source) return "";
  const was = /^model v(\d+)(?:, sampled)?$/.exec(source); // sampled: drawn at random from that ranking
  return was && Number(was[1]) !== version ? `ranked by ${source} (model now v${version})` : `ranked by ${source}`;
}

// Why the cards of a model-ranked feed come in their order; the sampled feeds draw at random
// with known chances that favour that order (so that the quality estimate stays honest).
const MODEL_ORDER = {
  top: "highest score first",
  bottom: "lowest score first",
  borderline: "scores nearest 0.5 first: the model is least sure of these",
};
const SAMPLED_ORDER = {
  top: "drawn at random, favouring the highest scores",
  bottom: "drawn at random, favouring the lowest scores",
  borderline: "drawn at random, favouring scores near 0.5 (the model is least sure of these)",
};

/**
 * Why the cards are in this order, in words (the source of the last fetch, see rankedBy).
 * @param {string} feed the feed selected @param {string} source @param {number} version
 */
export function orderText(feed, source, version) {
  if (!source) return "";
  const auto = /^bandit: (.*)$/.exec(source);
  if (auto) return `chosen by the auto feed from ${auto[1].replace(/ x(\d+)/g, " ($1)")}`;
  if (/^model v\d+$/.test(source)) return `${rankedBy(source, version)}, ${MODEL_ORDER[feed] ?? "best first"}`;
  if (/^model v\d+, sampled$/.test(source)) return `${rankedBy(source, version)}: ${SAMPLED_ORDER[feed] ?? "drawn at random from it"}`;
  if (source === "uniform random") return "in random order";
  if (source.startsWith("random (")) return "in random order: no model, text query or positive yet";
  if (source.startsWith("no model yet; ")) return `before the first model, ${orderText(feed, source.slice(14), version)}`;
  if (source.startsWith("similarity to ")) return `most like your positive labels first`;
  if (source === "labelled rows by disagreement") return "labels the model disputes most first";
  if (source === "zero-shot prior") return "closest to the text query first";
  if (source.startsWith("cosine similarity to clip ")) return `most like clip ${source.slice(26)} first`;
  return `ordered by ${source}`;
}

/**
 * What the score on a card is.
 * @param {string} task @param {number} version
 */
export function scoreTitle(task, version) {
  return version > 0
    ? `Score: the model's probability (model v${version}) that this clip shows ${task}`
    : "Score: none yet; the model trains once there is a positive and a negative label";
}

/**
 * @param {import("@anywidget/types").AnyModel} model
 * @param {{ onQuery: (text: string) => Promise<unknown>, onHelp: () => void,
 *           onConcept: (name: string) => void }} handlers
 */
export function createHead(model, { onQuery, onHelp, onConcept }) {
  const taskName = h("span", { class: "va-task", "data-testid": "task-name" });
  const tabs = h("div", { class: "va-tabs", role: "tablist", "aria-label": "Concepts (keys 1–9)", "data-testid": "concepts", hidden: true });
  const queryInput = /** @type {HTMLInputElement} */ (
    h("input", { type: "search", class: "va-query-input", "data-testid": "query-input", "aria-label": "Text query (zero-shot search)", placeholder: "describe the clips you want…" })
  );
  const queryButton = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", "data-testid": "query-submit", text: "Search" }));
  const queryReason = h("span", { class: "va-query-reason", "data-testid": "query-reason" });
  const queryForm = h("form", { class: "va-query", role: "search" }, [queryInput, queryButton, queryReason]);
  const feedSelect = /** @type {HTMLSelectElement} */ (h("select", { class: "va-feed-select", "data-testid": "feed-select", "aria-label": "Feed" }));
  const feedInfo = h("span", { class: "va-feed-info", "data-testid": "feed-info" });
  const helpButton = h("button", { type: "button", class: "va-icon", "data-testid": "help-button", "aria-label": "Keyboard shortcuts", text: "?", onclick: onHelp });
  const el = h("div", { class: "va-head" }, [taskName, tabs, queryForm, h("label", { class: "va-feed" }, ["Feed ", feedSelect]), helpButton, feedInfo]);

  queryForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = queryInput.value.trim();
    if (!text) return;
    queryButton.disabled = true;
    onQuery(text).finally(() => (queryButton.disabled = !model.get("text_search")));
  });
  feedSelect.addEventListener("change", () => {
    model.set("feed", feedSelect.value);
    model.save_changes();
  });

  function renderFeedInfo() {
    const feed = model.get("feed");
    const auto = feed === "auto" && model.get("auto_reason") ? `auto: ${model.get("auto_reason")}` : "";
    setText(feedInfo, [auto, orderText(feed, model.get("feed_source"), model.get("model_version"))].filter(Boolean).join(" · "));
  }

  /** One tab per concept, with its labels so far; the number keys 1-9 show them too. */
  function renderTabs(root) {
    const names = model.get("tasks");
    const counts = model.get("concept_counts");
    tabs.hidden = names.length < 2;
    taskName.hidden = !tabs.hidden;
    if (tabs.hidden) return;
    if (tabs.children.length !== names.length || names.some((n, i) => tabs.children[i].dataset.concept !== n)) {
      tabs.replaceChildren(...names.map((name, i) => h("button", { type: "button", role: "tab", class: "va-tab", "data-concept": name, "data-testid": "concept-tab", title: `Show ${name} (key ${i + 1})`, onclick: () => onConcept(name) })));
    }
    const shown = model.get("task_name");
    [...tabs.children].forEach((tab, i) => {
      const name = names[i];
      setText(tab, `${i + 1} ${name} · ${counts[name] ?? 0}`);
      attr(tab, "aria-selected", name === shown ? "true" : "false");
    });
    root.dataset.concept = shown;
  }

  /** @param {HTMLElement} root */
  function render(root) {
    taskName.textContent = model.get("task_name");
    renderTabs(root);
    if (!hasFocus(queryInput)) queryInput.value = model.get("query");
    const canSearch = model.get("text_search");
    queryInput.disabled = !canSearch;
    queryButton.disabled = !canSearch;
    queryReason.textContent = canSearch ? "" : model.get("text_search_reason");
    queryReason.hidden = canSearch;
    const feeds = model.get("_feeds");
    const words = model.get("_feed_text");
    if (feedSelect.options.length !== feeds.length) feedSelect.replaceChildren(...feeds.map((f) => h("option", { value: f, text: f, title: words[f] ?? "" })));
    feedSelect.value = model.get("feed");
    attr(feedSelect, "title", words[model.get("feed")] ?? "");
    renderFeedInfo();
    root.dataset.feed = model.get("feed");
    attr(root, "aria-label", `Annotator for task ${model.get("task_name")}`);
  }

  /** Nothing in the head reaches Python while `off` (a disconnected view). */
  function disable(off) {
    feedSelect.disabled = off;
    if (off) queryButton.disabled = queryInput.disabled = true;
  }

  return { el, queryInput, feedSelect, render, renderTabs, renderFeedInfo, disable };
}
