// Is the kernel answering? The events this view sent (labels, skips, undos) that Python has not
// acknowledged yet, what is known of the kernel, and the words that say so. A label is shown as
// saved only once Python acknowledged it (after the store committed it); one that gets no reply
// must never look pending forever. Pure logic, no DOM: time comes from `now()`.

export const STALL_MS = 5000; // no reply for this long: say so and pause the keys

// Kernel states (JupyterLab's Kernel.Status) after which this view's model is gone for good.
const GONE = {
  restarting: "the kernel was restarted",
  autorestarting: "the kernel died and was restarted",
  dead: "the kernel is gone (shut down or died)",
  terminating: "the kernel is shutting down",
};

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export class Link {
  constructor({ now = () => performance.now(), stallMs = STALL_MS } = {}) {
    this.now = now;
    this.stallMs = stallMs;
    this.inFlight = new Map(); // key -> {kind: "label" | "undo", what, clips, since}
    this.lost = ""; // why this view's kernel or model is gone for good ("" while it may live)
    this.kernel = ""; // the kernel's last known status ("" when the front end does not say)
    this.connection = ""; // the kernel connection's last known status
  }

  /**
   * An event went to Python: kind "label" (labels or a skip; `clips` of them, one action) or
   * "undo"; `what` names it for the status line.
   */
  sent(key, kind, what = "", clips = 1) {
    this.inFlight.set(key, { kind, what, clips, since: this.now() });
  }

  /** Python answered the event (acknowledged it or reported an error). */
  answered(key) {
    this.inFlight.delete(key);
  }

  /** The kernel or the model is gone for good: this view can no longer save anything. */
  gone(reason) {
    if (!this.lost) this.lost = reason;
  }

  /** Record a kernel status (JupyterLab's names); a restart or death makes this view lost. */
  kernelStatus(status) {
    this.kernel = String(status ?? "");
    if (GONE[this.kernel]) this.gone(GONE[this.kernel]);
  }

  connectionStatus(status) {
    this.connection = String(status ?? "");
  }

  /** Events not answered yet. */
  get pending() {
    return this.inFlight.size;
  }

  /** Clips whose label is not confirmed yet (a page label counts every clip). */
  get clips() {
    let n = 0;
    for (const { kind, clips } of this.inFlight.values()) if (kind !== "undo") n += clips;
    return n;
  }

  /** Milliseconds the oldest unanswered event has waited (0 when none). */
  get waitedMs() {
    let oldest = Infinity;
    for (const { since } of this.inFlight.values()) oldest = Math.min(oldest, since);
    return oldest === Infinity ? 0 : this.now() - oldest;
  }

  /** "ok", "stalled" (no reply for stallMs: maybe busy, maybe gone) or "lost" (gone for good). */
  get state() {
    if (this.lost) return "lost";
    return this.pending > 0 && this.waitedMs >= this.stallMs ? "stalled" : "ok";
  }

  /** Keys that need the kernel are refused unless the link is ok. */
  get paused() {
    return this.state !== "ok";
  }

  /** Undos not answered yet. */
  get undos() {
    let n = 0;
    for (const { kind } of this.inFlight.values()) if (kind === "undo") n += 1;
    return n;
  }

  /** What is unconfirmed, in words: "2 labels", "1 undo", "2 labels and 1 undo". */
  unconfirmed() {
    const parts = [];
    if (this.clips) parts.push(plural(this.clips, "label"));
    if (this.undos) parts.push(plural(this.undos, "undo"));
    return parts.join(" and ");
  }

  /** Why there is no reply, as far as this view can tell. */
  cause() {
    if (this.connection === "disconnected" || this.connection === "connecting")
      return "the connection to the Jupyter server is down";
    if (this.kernel === "busy") return "the kernel is busy (running a cell?)";
    return "the kernel is busy, restarted or gone";
  }

  /** The sentence for the status line; `failed`: the last event was refused by Python. */
  describe({ failed = false } = {}) {
    const what = this.unconfirmed();
    const named = [...this.inFlight.values()].map((e) => e.what).filter(Boolean);
    const list = named.length ? ` (${named.slice(0, 3).join("; ")}${named.length > 3 ? "; …" : ""})` : "";
    if (this.lost) {
      const unsaved = what ? `; ${what} not confirmed saved${list}` : "";
      return `${this.lost}: this view is disconnected and takes no keys${unsaved}. Run the cell again to continue.`;
    }
    if (this.state === "stalled") {
      const s = Math.floor(this.waitedMs / 1000);
      return `no reply from the kernel for ${s} s: ${what} not confirmed saved — ${this.cause()}; keys paused`;
    }
    if (this.pending > 0) return `saving ${this.clips + this.undos}…`;
    return failed ? "last label NOT saved" : "all labels saved ✓";
  }
}

/**
 * Tell `link` what the front end knows of the kernel; returns the function that stops it.
 * JupyterLab and Notebook 7 say when the kernel restarts: the model's comm is then no longer
 * live, and ipywidgets marks the view's element "jupyter-widgets-disconnected"; their widget
 * manager also exposes the kernel's status. Elsewhere, an unanswered event is all there is.
 * @param {{ model: import("@anywidget/types").AnyModel, el: HTMLElement, link: Link, onChange: () => void }} parts
 */
export function watchKernel({ model, el, link, onChange }) {
  const onCommLive = () => {
    if (el.classList.contains("jupyter-widgets-disconnected")) link.gone("the kernel was restarted or disconnected");
    onChange();
  };
  const onCommClose = () => {
    link.gone("the widget was closed in Python");
    onChange();
  };
  /** @type {any} not part of anywidget's API: used where the front end has it */
  const kernel = /** @type {any} */ (model.widget_manager)?.kernel;
  const onKernelStatus = (_, status) => {
    link.kernelStatus(status);
    onChange();
  };
  const onConnectionStatus = (_, status) => {
    link.connectionStatus(status);
    onChange();
  };
  if (kernel?.statusChanged?.connect) {
    link.kernelStatus(kernel.status);
    kernel.statusChanged.connect(onKernelStatus);
  }
  if (kernel?.connectionStatusChanged?.connect) {
    link.connectionStatus(kernel.connectionStatus);
    kernel.connectionStatusChanged.connect(onConnectionStatus);
  }
  model.on("comm_live_update", onCommLive);
  model.on("comm:close", onCommClose);
  // a view of a model restored without its kernel is disconnected from the start
  if (el.classList.contains("jupyter-widgets-disconnected")) link.gone("the kernel was restarted or disconnected");
  return () => {
    kernel?.statusChanged?.disconnect?.(onKernelStatus);
    kernel?.connectionStatusChanged?.disconnect?.(onConnectionStatus);
  };
}
