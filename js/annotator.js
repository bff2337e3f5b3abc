// va_widgets.Annotator front end (anywidget ESM). Python owns the state (traits) and decisions;
// this view renders them, captures keys and clicks, and keeps a local queue of clips whose
// previews are already decoded, so a label shows the next clip at once and goes to Python as a
// message; Python acknowledges it once the label store has committed it.
import { makeItems, releaseItem } from "./src/clips.js";
import { attr, formatScore, formatSeconds, h, setText } from "./src/dom.js";
import { Queue } from "./src/queue.js";
import { createRpc } from "./src/rpc.js";

const ACTIONS = {
  accept: "Accept: the clip shows the concept",
  reject: "Reject: the clip does not show it",
  skip: "Skip: not sure, do not ask again",
  undo: "Undo the last label or skip",
  prev: "Previous clip",
  next: "Next clip",
  play: "Play the real clip (again: back to the preview)",
  similar: "More clips like this one (similar feed)",
  help: "Show or hide this help",
};
const DECISION_TEXT = { accept: "positive", reject: "negative", skip: "skipped" };
const KEY_NAMES = { " ": "Space", ArrowLeft: "←", ArrowRight: "→", ArrowUp: "↑", ArrowDown: "↓" };
const FLIP_TICK_MS = 60;
const STATUS_DELAY_MS = 400; // quiet time after the last label before the quality is refreshed
const reducedMotion = () => globalThis.matchMedia?.("(prefers-reduced-motion: reduce)").matches;

function render({ model, el }) {
  const rpc = createRpc(model, { onOther: onOtherView });
  const queue = new Queue({ batchSize: model.get("batch_size"), release: releaseItem });
  let epoch = model.get("_epoch");
  let loading = false; // a "more" request is in flight
  let exhausted = false; // the feed returned nothing new in this epoch
  let pendingEvents = 0; // labels/skips/undos sent and not yet acknowledged
  let lastEventFailed = false;
  let hovered = null; // item under the mouse
  let note = ""; // transient message in the status line

  // -- skeleton -------------------------------------------------------------------------
  const root = h("div", {
    class: "va-annotator",
    tabindex: 0,
    role: "application",
    "aria-roledescription": "clip annotator",
    "data-testid": "va-annotator",
    // JupyterLab and Notebook 7 skip their single-key shortcuts inside this element.
    "data-lm-suppress-shortcuts": "true",
  });
  const taskName = h("span", { class: "va-task", "data-testid": "task-name" });
  const queryInput = h("input", {
    type: "search",
    class: "va-query-input",
    "data-testid": "query-input",
    "aria-label": "Text query (zero-shot search)",
    placeholder: "describe the clips you want…",
  });
  const queryButton = h("button", { type: "submit", "data-testid": "query-submit", text: "Search" });
  const queryReason = h("span", { class: "va-query-reason", "data-testid": "query-reason" });
  const queryForm = h("form", { class: "va-query", role: "search" }, [queryInput, queryButton, queryReason]);
  const feedSelect = h("select", { class: "va-feed-select", "data-testid": "feed-select", "aria-label": "Feed" });
  const feedInfo = h("span", { class: "va-feed-info", "data-testid": "feed-info" });
  const helpButton = h("button", { type: "button", class: "va-icon", "data-testid": "help-button", "aria-label": "Keyboard shortcuts", text: "?" });
  const errorText = h("span", { "data-testid": "error-text" });
  const errorClose = h("button", { type: "button", class: "va-icon", "aria-label": "Dismiss error", text: "×" });
  const errorBox = h("div", { class: "va-error", role: "alert", "data-testid": "error", hidden: true }, [errorText, errorClose]);
  const grid = h("div", { class: "va-grid", role: "list", "data-testid": "batch", "aria-label": "Clips of the current batch" });
  const empty = h("div", { class: "va-empty", "data-testid": "empty" });
  const actionBar = h("div", { class: "va-actions", role: "toolbar", "aria-label": "Label actions" });
  const counters = {};
  const counter = (name, label) => {
    counters[name] = h("span", { class: "va-count", "data-testid": `count-${name}` });
    return h("span", { class: `va-stat va-stat-${name}` }, [counters[name], ` ${label}`]);
  };
  const modelVersion = h("span", { "data-testid": "model-version" });
  const quality = h("span", { class: "va-quality", "data-testid": "quality" });
  const saved = h("span", { class: "va-saved", "data-testid": "saved-state" });
  const status = h("div", { class: "va-status", "data-testid": "status", "aria-live": "polite" }, [
    counter("positives", "positives"),
    counter("negatives", "negatives"),
    counter("skipped", "skipped"),
    h("span", { class: "va-stat" }, ["model v", modelVersion]),
    quality,
    saved,
  ]);
  const helpList = h("tbody");
  const helpClose = h("button", { type: "button", class: "va-icon", "aria-label": "Close help", text: "×" });
  const help = h("div", { class: "va-help", role: "dialog", "aria-label": "Keyboard shortcuts", "data-testid": "help", hidden: true }, [
    h("div", { class: "va-help-head" }, [h("strong", { text: "Keyboard shortcuts" }), helpClose]),
    h("table", { class: "va-help-list" }, [helpList]),
    h("p", { text: "Keys work while the annotator has focus (click it or Tab to it). Esc closes this help or stops a video." }),
  ]);
  root.append(
    h("div", { class: "va-head" }, [taskName, queryForm, h("label", { class: "va-feed" }, ["Feed ", feedSelect]), feedInfo, helpButton]),
    errorBox,
    grid,
    empty,
    actionBar,
    status,
    help,
  );
  el.append(root);

  // -- keys and buttons -------------------------------------------------------------------
  const buttons = {};
  const keyLabel = (keys) => keys.map((k) => KEY_NAMES[k] ?? k).join(" / ");
  function renderKeys() {
    const keys = model.get("shortcuts");
    actionBar.replaceChildren();
    helpList.replaceChildren();
    for (const [action, description] of Object.entries(ACTIONS)) {
      const list = keys[action] ?? [];
      const hint = keyLabel(list);
      if (action !== "help") {
        buttons[action] ??= h("button", { type: "button", class: `va-btn va-btn-${action}`, "data-testid": `action-${action}`, onclick: () => act(action) });
        const b = buttons[action];
        b.textContent = "";
        b.append(action[0].toUpperCase() + action.slice(1), h("kbd", { text: hint }));
        attr(b, "aria-label", `${description} (${hint})`);
        attr(b, "aria-keyshortcuts", list.join(" ") || null);
        actionBar.append(b);
      }
      const keysCell = h("td", {}, list.map((k) => h("kbd", { text: KEY_NAMES[k] ?? k })));
      helpList.append(h("tr", { "data-action": action }, [keysCell, h("td", { text: description })]));
    }
  }

  function actionFor(event) {
    const keys = model.get("shortcuts");
    for (const [action, list] of Object.entries(keys)) if (list.includes(event.key)) return action;
    const lower = event.key.length === 1 ? event.key.toLowerCase() : null;
    for (const [action, list] of Object.entries(keys)) if (lower && list.includes(lower)) return action;
    return null;
  }

  function onKeydown(event) {
    const target = event.target;
    const typing = target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
    if (typing) {
      event.stopPropagation(); // typing in the query box must not reach Jupyter
      if (event.key === "Escape") root.focus();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return; // leave Jupyter's chords alone
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      if (!help.hidden) toggleHelp(false);
      else stopVideo(queue.current);
      return;
    }
    const action = actionFor(event);
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    if (!event.repeat || action === "next" || action === "prev") act(action);
  }

  function act(action) {
    note = "";
    switch (action) {
      case "accept":
      case "reject":
      case "skip":
        return decide(action);
      case "undo":
        return undo();
      case "next":
        queue.move(+1);
        return update();
      case "prev":
        queue.move(-1);
        return update();
      case "play":
        return togglePlay(queue.current);
      case "similar":
        return similar(queue.current);
      case "help":
        return toggleHelp();
    }
  }

  // -- events sent to Python --------------------------------------------------------------
  function track(promise) {
    pendingEvents += 1;
    update();
    return promise
      .then(
        (reply) => {
          lastEventFailed = false;
          return reply;
        },
        (error) => {
          lastEventFailed = true;
          showError(error);
          throw error;
        },
      )
      .finally(() => {
        pendingEvents -= 1;
        update();
        scheduleStatus();
      });
  }

  // The quality estimate (cross-validated AP, ~0.1 s in Python) is asked for once labelling
  // pauses, so that a fast annotator never waits for it.
  let statusTimer = null;
  function scheduleStatus() {
    clearTimeout(statusTimer);
    if (pendingEvents > 0) return;
    statusTimer = setTimeout(() => rpc.request({ kind: "status" }).catch(showError), STATUS_DELAY_MS);
  }

  function decide(decision) {
    const item = queue.decide(decision);
    if (!item) return update();
    item.state = "pending";
    const seq = ++item.seq;
    stopVideo(item);
    const content = decision === "skip" ? { kind: "skip", clip_id: item.clip_id } : { kind: "label", clip_id: item.clip_id, label: decision === "accept" };
    track(rpc.request(content))
      .then(
        ({ msg }) => {
          if (item.seq === seq) item.state = "saved";
          applyScores(msg.scores);
        },
        () => {
          if (item.seq === seq) item.state = "error";
        },
      )
      .finally(() => renderCard(item));
    topUp();
  }

  function undo() {
    track(rpc.request({ kind: "undo" })).then(({ msg, buffers }) => {
      if (msg.clip_id == null) {
        note = "nothing to undo";
        return;
      }
      const [fresh] = makeItems(msg.clips, buffers, (id) => !queue.items.has(id));
      const item = queue.restore(msg.clip_id, fresh);
      if (item) item.seq += 1;
      note = "undone";
      exhausted = false;
    }, () => {}).finally(update);
  }

  function similar(item) {
    if (!item) return;
    rpc.request({ kind: "similar", clip_id: item.clip_id }).catch(showError);
  }

  function submitQuery(event) {
    event.preventDefault();
    const text = queryInput.value.trim();
    if (!text) return;
    queryButton.disabled = true;
    rpc
      .request({ kind: "query", text })
      .catch(showError)
      .finally(() => {
        queryButton.disabled = !model.get("text_search");
        root.focus();
      });
  }

  // Another view of this widget (the same `ann` shown twice, another tab) labelled, skipped or
  // undid a clip: Python's replies reach every view, so this one shows the decision too.
  function onOtherView(msg) {
    if (msg.clip_id == null || !["ack", "undone"].includes(msg.kind)) return;
    const decision = msg.kind === "undone" ? null : msg.label === true ? "accept" : msg.label === false ? "reject" : "skip";
    applyScores(msg.scores);
    const item = queue.decidedElsewhere(String(msg.clip_id), decision);
    if (item) stopVideo(item);
    if (!decision) exhausted = false; // Python put the undone clip back in its queue
    update();
    topUp();
  }

  function applyScores(scores) {
    for (const [clipId, score] of Object.entries(scores ?? {})) {
      const item = queue.items.get(clipId);
      if (item) item.score = score;
    }
  }

  // -- loading clips ----------------------------------------------------------------------
  function topUp() {
    if (loading || exhausted || queue.ahead >= model.get("prefetch")) return;
    loading = true;
    const asked = epoch;
    const n = Math.min(64, model.get("prefetch") + model.get("batch_size") - queue.ahead);
    rpc
      .request({ kind: "more", n, have: queue.known })
      .then(({ msg, buffers }) => {
        if (msg.epoch !== epoch) return; // a feed change overtook it
        if (msg.clips.length === 0 && asked === epoch) exhausted = true;
        // Cards are built now, so that showing the next page only inserts them.
        for (const item of queue.add(makeItems(msg.clips, buffers, (id) => !queue.items.has(id)))) cardOf(item);
      })
      .catch(showError)
      .finally(() => {
        loading = false;
        update();
        if (!exhausted && asked === epoch) topUp();
        else if (asked !== epoch) topUp();
      });
  }

  function onEpoch() {
    epoch = model.get("_epoch");
    exhausted = false;
    queue.discardUndecided();
    update();
    topUp();
  }

  // -- video ------------------------------------------------------------------------------
  function togglePlay(item) {
    if (!item) return;
    if (item.card?.dataset.playing === "true") return stopVideo(item);
    if (item.videoUrl) return startVideo(item);
    item.card && (item.card.dataset.playing = "loading");
    rpc
      .request({ kind: "play", clip_id: item.clip_id })
      .then(({ msg, buffers }) => {
        if (!item.urls.length && !item.frames.length) return; // released meanwhile
        item.videoUrl = URL.createObjectURL(new Blob([buffers[0]], { type: msg.mime }));
        startVideo(item);
      })
      .catch((error) => {
        if (item.card) item.card.dataset.playing = "false";
        showError(error);
      });
  }

  function startVideo(item) {
    const card = cardOf(item);
    const media = card.querySelector(".va-media");
    media.querySelector("video")?.remove();
    const video = h("video", { src: item.videoUrl, autoplay: true, muted: true, loop: true, playsinline: true, controls: true, "data-testid": "clip-video", "aria-label": `Video of clip ${item.clip_id}` });
    video.muted = true;
    media.append(video);
    card.dataset.playing = "true";
    video.play?.().catch(() => {});
  }

  function stopVideo(item) {
    const card = item?.card;
    if (!card) return;
    const video = card.querySelector("video");
    video?.pause();
    video?.remove();
    card.dataset.playing = "false";
  }

  // -- rendering --------------------------------------------------------------------------
  function cardOf(item) {
    if (item.card) return item.card;
    const media = h("div", { class: "va-media" }, item.frames);
    const caption = h("div", { class: "va-caption" }, [
      h("span", { class: "va-score", "data-testid": "clip-score" }),
      h("span", { class: "va-clip-feed", "data-testid": "clip-feed" }),
      h("span", { class: "va-decision", "data-testid": "clip-decision" }),
      h("span", { class: "va-where", text: `${item.video} ${formatSeconds(item.start_seconds)}–${formatSeconds(item.end_seconds)}` }),
    ]);
    item.card = h(
      "div",
      {
        class: "va-card",
        role: "listitem",
        "data-testid": "clip",
        "data-clip-id": item.clip_id,
        "aria-label": `Clip ${item.clip_id} of ${item.video}`,
        onclick: () => {
          if (queue.goTo(item.clip_id)) update();
          root.focus();
        },
        onmouseenter: () => (hovered = item),
        onmouseleave: () => {
          if (hovered === item) hovered = null;
        },
      },
      [media, caption],
    );
    return item.card;
  }

  function renderCard(item, isCurrent = item === queue.current) {
    const card = cardOf(item);
    attr(card, "aria-current", isCurrent ? "true" : null);
    card.dataset.decision = item.decision ?? "";
    card.dataset.state = item.state;
    setText(card.querySelector(".va-score"), `score ${formatScore(item.score)}`);
    setText(card.querySelector(".va-clip-feed"), item.feed);
    setText(card.querySelector(".va-decision"), item.decision ? DECISION_TEXT[item.decision] + (item.state === "pending" ? " …" : item.state === "error" ? " (not saved)" : "") : "");
    item.frames.forEach((img, i) => img.classList.toggle("va-on", i === item.frame));
  }

  function renderPage() {
    const items = queue.pageIds.map((id) => queue.items.get(id));
    const cards = items.map((item) => cardOf(item));
    if (cards.length !== grid.children.length || cards.some((c, i) => grid.children[i] !== c)) grid.replaceChildren(...cards);
    const current = queue.current;
    items.forEach((item) => renderCard(item, item === current));
    root.dataset.clipId = current?.clip_id ?? "";
    setText(empty, current ? "" : loading || !exhausted ? "Loading clips…" : "No more clips in this feed: pick another feed or query.");
    empty.hidden = Boolean(current);
    for (const action of ["accept", "reject", "skip", "play", "similar"]) if (buttons[action]) buttons[action].disabled = !current;
  }

  function renderHead() {
    taskName.textContent = model.get("task_name");
    if (document.activeElement !== queryInput) queryInput.value = model.get("query");
    const canSearch = model.get("text_search");
    queryInput.disabled = !canSearch;
    queryButton.disabled = !canSearch;
    queryReason.textContent = canSearch ? "" : model.get("text_search_reason");
    queryReason.hidden = canSearch;
    const feeds = model.get("_feeds");
    if (feedSelect.options.length !== feeds.length) feedSelect.replaceChildren(...feeds.map((f) => h("option", { value: f, text: f })));
    feedSelect.value = model.get("feed");
    renderFeedInfo();
    root.dataset.feed = model.get("feed");
    attr(root, "aria-label", `Annotator for task ${model.get("task_name")}`);
  }

  function renderFeedInfo() {
    const auto = model.get("feed") === "auto" ? `auto → ${model.get("auto_choice")}: ${model.get("auto_reason")}` : "";
    setText(feedInfo, [auto, rankedBy()].filter(Boolean).join(" · "));
  }

  // What ordered the clips fetched last; a model that has retrained since is named too, as the
  // clips already loaded keep that order (their scores on the cards are the current model's).
  function rankedBy() {
    const source = model.get("feed_source");
    if (!source) return "";
    const was = /^model v(\d+)(?:, sampled)?$/.exec(source); // sampled: drawn at random from that ranking
    const now = model.get("model_version");
    return was && Number(was[1]) !== now ? `ranked by ${source} (model now v${now})` : `ranked by ${source}`;
  }

  function renderStatus() {
    const counts = model.get("counts");
    for (const name of ["positives", "negatives", "skipped"]) setText(counters[name], String(counts[name] ?? 0));
    setText(modelVersion, String(model.get("model_version")));
    const q = model.get("quality");
    setText(quality, typeof q.ap === "number" ? `CV AP ${q.ap.toFixed(2)} (95% CI ${q.ci_low.toFixed(2)}–${q.ci_high.toFixed(2)})` : "CV AP: not enough labels");
    attr(quality, "title", q.reason ?? "");
    attr(quality, "data-n-labels", String((q.n_pos ?? 0) + (q.n_neg ?? 0))); // labels it reflects
    const state = pendingEvents > 0 ? "false" : lastEventFailed ? "error" : "true";
    root.dataset.saved = state;
    root.dataset.pending = String(pendingEvents);
    root.dataset.lastSaved = model.get("last_saved");
    saved.dataset.saved = state;
    const text = state === "false" ? `saving ${pendingEvents}…` : state === "error" ? "last label NOT saved" : "all labels saved ✓";
    setText(saved, note ? `${text} · ${note}` : text);
  }

  function renderError() {
    const message = model.get("error");
    errorText.textContent = message;
    errorBox.hidden = !message;
  }

  function update() {
    renderPage();
    renderStatus();
    // Last, after every write: the layout it forces is then the one the next frame uses.
    queue.current?.card?.scrollIntoView?.({ block: "nearest" });
  }

  function showError(error) {
    // Python also puts the message in the `error` trait; this covers messages that never got there.
    if (!model.get("error")) {
      errorText.textContent = String(error?.message ?? error);
      errorBox.hidden = false;
    }
  }

  function toggleHelp(show = help.hidden) {
    help.hidden = !show;
    root.focus();
  }

  // -- flipbook: the current and the hovered clip play their frames -------------------------
  // A clip that starts playing shows its current frame for a whole frame time first (every
  // flip is a frame the browser must render, and a key pressed just after one waits a frame).
  let playing = new Set();
  const timer = setInterval(() => {
    const now = performance.now();
    const animated = new Set([hovered, reducedMotion() ? null : queue.current].filter(Boolean));
    for (const item of animated) {
      if (item.frames.length < 2 || !item.card?.isConnected) {
        animated.delete(item); // not playing yet: its first frame time starts when it does
        continue;
      }
      if (!playing.has(item)) item.lastFlip = now;
      const frameMs = Math.min(500, Math.max(120, ((item.end_seconds - item.start_seconds) * 1000) / item.frames.length));
      if (now - item.lastFlip < frameMs) continue;
      item.lastFlip = now;
      item.frame = (item.frame + 1) % item.frames.length;
      item.frames.forEach((img, i) => img.classList.toggle("va-on", i === item.frame));
    }
    playing = animated;
  }, FLIP_TICK_MS);

  // -- wiring -----------------------------------------------------------------------------
  root.addEventListener("keydown", onKeydown);
  queryForm.addEventListener("submit", submitQuery);
  feedSelect.addEventListener("change", () => {
    model.set("feed", feedSelect.value);
    model.save_changes();
  });
  helpButton.addEventListener("click", () => toggleHelp());
  helpClose.addEventListener("click", () => toggleHelp(false));
  errorClose.addEventListener("click", () => {
    model.set("error", "");
    model.save_changes();
    errorBox.hidden = true;
  });
  model.on("change:task_name change:query change:text_search change:text_search_reason change:feed change:auto_choice change:auto_reason change:feed_source", renderHead);
  model.on("change:model_version", renderFeedInfo);
  model.on("change:counts change:model_version change:quality change:last_saved", renderStatus);
  model.on("change:error", renderError);
  model.on("change:shortcuts", renderKeys);
  model.on("change:_epoch", onEpoch);
  model.on("change:_queue", () => queue.retainUpcoming(model.get("_queue")));
  model.on("change:batch_size", () => (queue.batchSize = model.get("batch_size")));
  model.on("change:prefetch", topUp);

  renderKeys();
  renderHead();
  renderError();
  update();
  topUp();

  return () => {
    clearTimeout(statusTimer);
    clearInterval(timer);
    rpc.dispose();
    queue.clear(); // revokes every object URL, stops videos
  };
}

export default { render };
