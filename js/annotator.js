// va_widgets.Annotator front end (anywidget ESM). Python owns the state (traits) and decisions;
// this view renders them, captures keys and clicks, and keeps a local queue of clips whose
// previews are already decoded, so a label shows the next clip at once and goes to Python as a
// message; Python acknowledges it once the label store has committed it.
//
// This module wires the parts together and talks to Python; each concern has its own module in
// src/: keys (keys, buttons, help), cards and selection, flipbook, player, head, status, link
// (is the kernel answering?), queue (pages and cursor), clips (previews), rpc, dom.
import { DECISION_TEXT, createCards } from "./src/cards.js";
import { makeItems, releaseItem } from "./src/clips.js";
import { formatSeconds, h, setText } from "./src/dom.js";
import { startFlipbook } from "./src/flipbook.js";
import { createHead, scoreTitle } from "./src/head.js";
import { acts, actionFor, createKeyViews, isTextField, keyName } from "./src/keys.js";
import { Link, watchKernel } from "./src/link.js";
import { focusWhenAttached, pageTheme, watchTheme } from "./src/page.js";
import { createPlayer } from "./src/player.js";
import { Queue } from "./src/queue.js";
import { createRpc } from "./src/rpc.js";
import { Selection } from "./src/selection.js";
import { createStatus } from "./src/status.js";

// Actions that need a live kernel: refused while it does not answer (see src/link.js).
const NEEDS_KERNEL = new Set(["positive", "negative", "positive_page", "negative_page", "skip", "undo", "play", "open", "similar"]);
// Keys of the large player (not configurable): frame steps.
const FRAME_KEYS = { ",": -1, ArrowLeft: -1, ".": +1, ArrowRight: +1 };
const STATUS_DELAY_MS = 400; // quiet time after the last label before the quality is refreshed
const LINK_CHECK_MS = 250; // how often an unanswered event is checked on

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  const rpc = createRpc(model, { onOther: onOtherView });
  const queue = new Queue({ batchSize: model.get("batch_size"), release: releaseItem });
  const link = new Link(); // labels/skips/undos sent and not yet acknowledged; is the kernel there?
  const selection = new Selection(); // cards selected on the current page
  let selectionPage = null; // the page the selection belongs to
  let epoch = model.get("_epoch");
  let loading = false; // a "more" request is in flight
  let exhausted = false; // the feed returned nothing new in this epoch
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
  const head = createHead(model, { onQuery: query, onHelp: () => toggleHelp(), onConcept: (name) => showConcept(name) });
  const keys = createKeyViews({ onAction: act, onClose: () => toggleHelp(false) });
  const status = createStatus(model, link);
  const cards = createCards({
    stateOf: shownState,
    scoreTitle: () => scoreTitle(model.get("task_name"), model.get("model_version")),
    onClick: (item, event) => {
      const from = queue.current?.clip_id ?? null;
      if (event.ctrlKey || event.metaKey) selection.toggle(item.clip_id);
      else if (event.shiftKey) selection.extendTo(queue.pageIds, item.clip_id, from);
      else selection.clear();
      queue.goTo(item.clip_id);
      update();
      root.focus();
    },
    onHover: (item, inside) => {
      if (inside) hovered = item;
      else if (hovered === item) hovered = null;
    },
  });
  const player = createPlayer({ rpc, cardOf: cards.cardOf, showError, onClose: () => closePlayer() });
  const errorText = h("span", { "data-testid": "error-text" });
  const errorClose = h("button", { type: "button", class: "va-icon", "aria-label": "Dismiss error", text: "×" });
  const errorBox = h("div", { class: "va-error", role: "alert", "data-testid": "error", hidden: true }, [errorText, errorClose]);
  // Two grids in turn: the shown page, and the next page laid out and painted ahead in a layer
  // of its own that shows nothing (the spare), so that a label that finishes a page only swaps
  // the two layers in the key's frame; the spare is refilled after that frame.
  const GRID = { role: "listbox", "aria-multiselectable": "true", "data-testid": "batch", "aria-label": "Clips of the current page" };
  let grid = h("div", { class: "va-grid", ...GRID });
  let spare = h("div", { class: "va-grid va-spare", "aria-hidden": "true", inert: true });
  const stage = h("div", { class: "va-stage" }, [grid, spare]);
  const empty = h("div", { class: "va-empty", "data-testid": "empty" });
  root.append(head.el, errorBox, stage, empty, keys.actionBar, status.el, player.el, keys.help);
  el.append(root);

  // -- keys -------------------------------------------------------------------------------
  function onKeydown(event) {
    if (isTextField(event.target)) {
      event.stopPropagation(); // typing in the query box must not reach Jupyter
      if (event.key === "Escape") root.focus();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return; // leave Jupyter's chords alone
    if (player.isOpen && keys.help.hidden && onPlayerKey(event)) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      if (!keys.help.hidden) toggleHelp(false);
      else if (selection.size) {
        selection.clear();
        update();
      } else player.stop(queue.current);
      return;
    }
    const concepts = model.get("tasks");
    if (concepts.length > 1 && /^[1-9]$/.test(event.key)) {
      event.preventDefault(); // JupyterLab's own 1-9 (headings) must not fire
      event.stopPropagation();
      if (!event.repeat) showConcept(concepts[Number(event.key) - 1]);
      return;
    }
    const action = actionFor(event, model.get("shortcuts"));
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    if (acts(event, action)) act(action, { extend: event.shiftKey });
  }

  /** Keys the large player takes first (true when it took the key). */
  function onPlayerKey(event) {
    const action = actionFor(event, model.get("shortcuts"));
    if (event.key === "Escape" || action === "open") closePlayer();
    else if (FRAME_KEYS[event.key] && !event.shiftKey) player.step(FRAME_KEYS[event.key]);
    else if (action === "play") player.togglePause();
    else return false;
    return true;
  }

  function closePlayer() {
    player.close();
    root.dataset.player = "closed";
    update();
    root.focus();
  }

  /** Run an action; `extend`: a move also extends the selection (Shift+arrow). */
  function act(action, { extend = false } = {}) {
    note = "";
    if (NEEDS_KERNEL.has(action) && link.paused) {
      note = `key not taken (${link.state === "lost" ? "disconnected" : "waiting for the kernel"})`;
      return update();
    }
    switch (action) {
      case "positive":
      case "negative":
        return selection.size ? decide(action, selection.inOrder(queue.pageIds)) : decide(action);
      case "positive_page":
      case "negative_page":
        return decide(action.replace("_page", ""), queue.undecidedOnPage);
      case "skip":
        return decide(action);
      case "undo":
        return undo();
      case "next":
      case "prev":
        return move(action === "next" ? +1 : -1, extend);
      case "play":
        return player.toggle(queue.current);
      case "open":
        if (!queue.current) return;
        player.stop(queue.current);
        player.show(queue.current);
        root.dataset.player = "open";
        return update();
      case "similar":
        return similar(queue.current);
      case "help":
        return toggleHelp();
    }
  }

  function move(delta, extend) {
    const from = queue.current?.clip_id ?? null;
    queue.move(delta);
    const to = queue.current?.clip_id;
    if (extend && to) selection.extendTo(queue.pageIds, to, from);
    update();
  }

  function toggleHelp(show = keys.help.hidden) {
    keys.help.hidden = !show;
    root.focus();
  }

  // -- events sent to Python --------------------------------------------------------------
  let eventCount = 0;
  /** Follow an event sent to Python (kind "label" or "undo"; `what` names it for the status). */
  function track(kind, what, promise, clips = 1) {
    const key = ++eventCount;
    link.sent(key, kind, what, clips);
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
        link.answered(key);
        update();
        scheduleStatus();
      });
  }

  // The quality estimate (cross-validated AP, ~0.1 s in Python) is asked for once labelling
  // pauses, so that a fast annotator never waits for it.
  let statusTimer = null;
  function scheduleStatus() {
    clearTimeout(statusTimer);
    if (link.pending > 0 || link.lost) return;
    statusTimer = setTimeout(() => rpc.request({ kind: "status" }).catch(showError), STATUS_DELAY_MS);
  }

  /**
   * Decide the current clip, or every clip of `clipIds` (a page or a selection: one message,
   * one store transaction, one undo step). The view moves on at once; Python acknowledges it.
   * @param {string} decision @param {string[] | null} [clipIds]
   */
  function decide(decision, clipIds = null) {
    const items = clipIds ? queue.decideMany(clipIds, decision) : [queue.decide(decision)].filter(Boolean);
    if (!items.length) return update();
    selection.clear();
    const seqs = items.map((item) => {
      item.state = "pending";
      player.stop(item);
      return ++item.seq;
    });
    const ids = items.map((item) => item.clip_id);
    const content = decision === "skip" ? { kind: "skip", task: shownTask(), clip_id: ids[0] } : { kind: "label", task: shownTask(), clip_ids: ids, label: decision === "positive" };
    const [first] = items;
    const what = `${DECISION_TEXT[decision]}: ${items.length > 1 ? `${items.length} clips` : `${first.video} ${formatSeconds(first.start_seconds)}`}`;
    const settle = (state) => items.forEach((item, i) => item.seq === seqs[i] && (item.state = state));
    track("label", what, rpc.request(content), items.length)
      .then(
        ({ msg }) => {
          settle("saved");
          applyScores(msg.scores);
        },
        () => settle("error"),
      )
      .finally(update);
    topUp();
  }

  function undo() {
    track("undo", "", rpc.request({ kind: "undo", task: shownTask() }))
      .then(({ msg, buffers }) => {
        if (!msg.clip_ids.length) {
          note = "nothing to undo";
          return;
        }
        selection.clear();
        const fresh = makeItems(msg.clips, buffers, (id) => !queue.items.has(id));
        const items = queue.restoreMany(msg.clip_ids, fresh);
        for (const item of items) {
          item.seq += 1;
          showUndone(item, msg);
        }
        note = items.length > 1 ? `undone: ${items.length} clips` : "undone";
        exhausted = false;
      }, () => {})
      .finally(update);
  }

  // An undone clip shows the decision that was undone (Python says which).
  function showUndone(item, msg) {
    item.previous = msg.clips?.find((c) => c.clip_id === item.clip_id)?.previous ?? null;
    item.undone = true;
  }

  function similar(item) {
    if (!item) return;
    rpc.request({ kind: "similar", task: shownTask(), clip_id: item.clip_id }).catch(showError);
  }

  function query(text) {
    if (link.lost) return Promise.resolve();
    return rpc
      .request({ kind: "query", task: shownTask(), text })
      .catch(showError)
      .finally(() => root.focus());
  }

  // Another view of this widget (the same `ann` shown twice, another tab) labelled, skipped or
  // undid clips: Python's replies reach every view, so this one shows the decisions too.
  function onOtherView(msg) {
    if (!Array.isArray(msg.clip_ids) || !["ack", "undone"].includes(msg.kind) || msg.task !== shownTask()) return;
    const decision = msg.kind === "undone" ? null : msg.label === true ? "positive" : msg.label === false ? "negative" : "skip";
    applyScores(msg.scores);
    for (const clipId of msg.clip_ids) {
      const item = queue.decidedElsewhere(String(clipId), decision);
      if (item) player.stop(item);
      if (item && !decision) showUndone(item, msg);
    }
    if (!decision) exhausted = false; // Python put the undone clips back in its queue
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
    const task = shownTask();
    const n = Math.min(64, model.get("prefetch") + model.get("batch_size") - queue.ahead);
    rpc
      .request({ kind: "more", task, n, have: queue.known })
      .then(({ msg, buffers }) => {
        if (msg.epoch !== epoch || msg.task !== shownTask()) return; // a feed or concept change overtook it
        if (msg.clips.length === 0 && asked === epoch) exhausted = true;
        // Cards are built now, so that showing the next page only inserts them.
        for (const item of queue.add(makeItems(msg.clips, buffers, (id) => queue.admits(id)))) cards.cardOf(item);
      })
      .catch(showError)
      .finally(() => {
        loading = false;
        update();
        if (!exhausted || asked !== epoch || task !== shownTask()) topUp();
      });
  }

  const shownTask = () => model.get("task_name");

  /** Show concept `name` (a number key or a tab): Python switches; onConcept follows. */
  function showConcept(name) {
    if (!name || name === shownTask() || link.lost) return;
    model.set("task_name", name);
    model.save_changes();
    onConcept();
  }

  // Another concept is shown: the same page, each card with its decision for that concept
  // (asked from Python); new clips come from that concept's own feed.
  let conceptShown = shownTask();
  function onConcept() {
    const task = shownTask();
    if (task === conceptShown) return;
    conceptShown = task;
    selection.clear();
    exhausted = false;
    const held = queue.pageIdsAll;
    for (const id of held) {
      const item = queue.items.get(id);
      item.seq += 1; // a late reply about the other concept leaves the card alone
      Object.assign(item, { decision: null, state: "new", previous: null, undone: false });
    }
    root.dataset.concept = task;
    update();
    rpc
      .request({ kind: "decisions", task, clip_ids: held })
      .then(({ msg }) => {
        if (msg.task !== shownTask()) return;
        for (const [id, decision] of Object.entries(msg.decisions)) {
          const item = queue.items.get(id);
          if (item && !item.decision) Object.assign(item, { decision, state: "saved" });
        }
        queue.settleCursor();
        update();
      })
      .catch(showError);
    topUp();
  }

  function onEpoch() {
    epoch = model.get("_epoch");
    exhausted = false;
    queue.discardUndecided();
    update();
    topUp();
  }

  // -- rendering --------------------------------------------------------------------------
  // A pending event is "unconfirmed" while the kernel does not answer, "unsaved" once it is gone.
  function shownState(item) {
    if (item.state !== "pending" || link.state === "ok") return item.state;
    return link.state === "lost" ? "unsaved" : "unconfirmed";
  }

  const holds = (el, shown) => shown.length === el.children.length && shown.every((c, i) => el.children[i] === c);

  function swapGrids() {
    [grid, spare] = [spare, grid];
    for (const [name, value] of Object.entries(GRID)) {
      grid.setAttribute(name, value);
      spare.removeAttribute(name);
    }
    grid.classList.remove("va-spare");
    grid.removeAttribute("aria-hidden");
    grid.removeAttribute("inert");
    spare.classList.add("va-spare");
    spare.setAttribute("aria-hidden", "true");
    spare.setAttribute("inert", "");
  }

  // The next page into the spare grid, once the frame that shows this update is painted.
  let spareFrame = 0;
  let disposed = false;
  function scheduleSpare() {
    if (spareFrame) return;
    spareFrame = requestAnimationFrame(() => setTimeout(fillSpare, 0));
  }
  function fillSpare() {
    spareFrame = 0;
    if (disposed) return;
    const items = queue.nextPageIds.map((id) => queue.items.get(id)).filter(Boolean);
    const shown = items.map((item) => cards.cardOf(item));
    if (!holds(spare, shown)) spare.replaceChildren(...shown);
    items.forEach((item) => cards.render(item, false)); // its first card is styled as the current one (CSS)
  }

  function renderPage() {
    const items = queue.pageIds.map((id) => queue.items.get(id));
    const shown = items.map((item) => cards.cardOf(item));
    if (!holds(grid, shown)) {
      if (shown.length && holds(spare, shown)) swapGrids();
      else grid.replaceChildren(...shown);
    }
    if (selectionPage !== queue.pageIds) selection.clear(); // a selection belongs to its page
    selectionPage = queue.pageIds;
    const current = queue.current;
    items.forEach((item) => cards.render(item, item === current, selection.has(item.clip_id)));
    root.dataset.selected = String(selection.size);
    root.dataset.clipId = current?.clip_id ?? "";
    const waiting = link.lost ? "This view is disconnected from its kernel." : loading || !exhausted ? "Loading clips…" : "No more clips in this feed: pick another feed or query.";
    setText(empty, current ? "" : waiting);
    empty.hidden = Boolean(current);
    for (const action of NEEDS_KERNEL) {
      const button = keys.buttons[action];
      if (button) button.disabled = link.paused || (!current && action !== "undo");
    }
    head.disable(Boolean(link.lost));
  }

  function renderStatus() {
    const sc = model.get("shortcuts");
    const selected = selection.size ? `${selection.size} selected: ${keyName(sc.positive[0])} / ${keyName(sc.negative[0])} label them, Esc clears` : "";
    status.render(root, { note: [note, selected].filter(Boolean).join(" · "), failed: lastEventFailed });
  }

  function renderError() {
    const message = model.get("error");
    errorText.textContent = message;
    errorBox.hidden = !message;
  }

  function update() {
    if (player.isOpen && queue.current && player.shown !== queue.current) player.show(queue.current); // follows the labelling
    renderPage();
    renderStatus();
    // Last, after every write: the layout it forces is then the one the next frame uses.
    queue.current?.card?.scrollIntoView?.({ block: "nearest" });
    scheduleSpare();
  }

  function showError(error) {
    // Python also puts the message in the `error` trait; this covers messages that never got there.
    if (!model.get("error")) {
      errorText.textContent = String(error?.message ?? error);
      errorBox.hidden = false;
    }
  }

  const stopFlipbook = startFlipbook({ current: () => queue.current, hovered: () => hovered });

  // -- is the kernel there? (src/link.js) ----------------------------------------------------
  let linkShown = "";
  function checkLink() {
    const shown = `${link.state} ${link.state === "stalled" ? Math.floor(link.waitedMs / 1000) : ""}`;
    if (shown === linkShown) return;
    linkShown = shown;
    update();
  }
  const linkTimer = setInterval(checkLink, LINK_CHECK_MS);
  const stopWatchingKernel = watchKernel({ model, el, link, onChange: checkLink });

  // -- the page around it ------------------------------------------------------------------
  // The notebook's theme goes to Python (figures follow it). A cell that displayed the widget
  // gives it the keyboard once: its first view takes focus, so `a` right after Shift+Enter
  // labels instead of reaching the notebook (not when the user is typing elsewhere by then).
  function reportTheme() {
    const theme = pageTheme();
    if (model.get("theme") === theme || link.lost) return;
    model.set("theme", theme);
    model.save_changes();
  }
  const stopWatchingTheme = watchTheme(reportTheme);
  reportTheme();
  const request = model.get("_focus_request");
  const stopFocus =
    request > model.get("_focus_done")
      ? focusWhenAttached(root, () => {
          model.set("_focus_done", request);
          model.save_changes();
        })
      : () => {};

  // -- wiring -----------------------------------------------------------------------------
  root.addEventListener("keydown", onKeydown);
  errorClose.addEventListener("click", () => {
    model.set("error", "");
    model.save_changes();
    errorBox.hidden = true;
  });
  const renderHead = () => head.render(root);
  model.on("change:tasks change:concept_counts", () => head.renderTabs(root));
  model.on("change:task_name change:query change:text_search change:text_search_reason change:feed change:auto_choice change:auto_reason change:feed_source", renderHead);
  model.on("change:model_version", head.renderFeedInfo);
  model.on("change:counts change:model_version change:quality change:quality_trend change:feed_left change:target change:last_saved", renderStatus);
  model.on("change:_feeds change:_feed_text", () => keys.renderFeeds(model.get("_feeds"), model.get("_feed_text")));
  model.on("change:error", renderError);
  model.on("change:shortcuts", () => keys.render(model.get("shortcuts")));
  model.on("change:_epoch", onEpoch);
  model.on("change:task_name", onConcept);
  model.on("change:_queue", () => queue.retainUpcoming(model.get("_queue")));
  model.on("change:batch_size", () => (queue.batchSize = model.get("batch_size")));
  model.on("change:prefetch", topUp);

  keys.render(model.get("shortcuts"));
  keys.renderFeeds(model.get("_feeds"), model.get("_feed_text"));
  renderHead();
  renderError();
  update();
  topUp();

  return () => {
    disposed = true;
    cancelAnimationFrame(spareFrame);
    clearTimeout(statusTimer);
    stopFlipbook();
    player.close();
    stopWatchingTheme();
    stopFocus();
    clearInterval(linkTimer);
    stopWatchingKernel();
    rpc.dispose();
    queue.clear(); // revokes every object URL, stops videos
  };
}

export default { render };
