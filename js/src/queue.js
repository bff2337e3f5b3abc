// The clips of this view: pages (batches) shown one at a time, a cursor, and the upcoming
// clips already loaded (previews decoded) so that labelling never waits on the kernel.
// Pure logic, no DOM: `release(item)` frees an item's resources when it is dropped.

const KEEP_PAGES = 10; // decided pages kept for going back

export class Queue {
  /** @param {{ batchSize?: number, release?: (item: any) => void }} [options] */
  constructor({ batchSize = 8, release = (_item) => {} } = {}) {
    this.batchSize = batchSize;
    this.release = release;
    /** @type {Map<string, any>} clip_id -> item */
    this.items = new Map();
    /** @type {string[][]} arrays of clip ids; the last one is the newest */
    this.pages = [[]];
    this.page = 0;
    this.cursor = 0;
    /** @type {string[]} loaded clip ids not yet on a page */
    this.upcoming = [];
  }

  get pageIds() {
    return this.pages[this.page];
  }

  get current() {
    return this.items.get(this.pageIds[this.cursor]) ?? null;
  }

  /** Undecided clips not yet passed: what the annotator can still label without waiting. */
  get ahead() {
    const ids = this.pages[this.pages.length - 1];
    return this.upcoming.length + ids.filter((id) => !this.items.get(id).decision).length;
  }

  /** The clip ids on pages (shown now or kept for going back), not the upcoming ones. */
  get pageIdsAll() {
    return this.pages.flat();
  }

  /** With no current clip (waiting) but open clips on the page, the first open one. */
  settleCursor() {
    if (this.current) return;
    const open = this.pageIds.findIndex((id) => !this.items.get(id).decision);
    if (open >= 0) this.cursor = open;
  }

  /** Every clip id this view holds (sent to Python as `have`). */
  get known() {
    return [...this.items.keys()];
  }

  /**
   * Whether a clip Python serves should become an item: one this view does not hold, or holds
   * decided and saved (or failed), which a feed serves again to be labelled again (review).
   */
  admits(clipId) {
    const held = this.items.get(clipId);
    return !held || (Boolean(held.decision) && ["saved", "error"].includes(held.state) && !this.upcoming.includes(clipId));
  }

  /**
   * Add loaded items (duplicates are released; a decided clip served again replaces its old
   * card, which leaves its page); open a page if the current one is done.
   */
  add(items) {
    const added = [];
    for (const item of items) {
      if (!this.admits(item.clip_id)) {
        this.release(item);
        continue;
      }
      if (this.items.has(item.clip_id)) this._drop(item.clip_id);
      this.items.set(item.clip_id, item);
      this.upcoming.push(item.clip_id);
      added.push(item);
    }
    if (this.page === this.pages.length - 1 && !this._undecidedIn(this.pageIds)) this._openPage();
    return added;
  }

  /** Record a decision for the current clip and move on; returns the decided item. */
  decide(decision) {
    const item = this.current;
    if (!item) return null;
    item.decision = decision;
    this._advance();
    return item;
  }

  /**
   * Record one decision for several clips held here (a page or a selection, one action); the
   * cursor moves on if the current clip is among them. Returns the decided items.
   * @param {string[]} clipIds @param {string} decision
   */
  decideMany(clipIds, decision) {
    const items = clipIds.map((id) => this.items.get(id)).filter(Boolean);
    for (const item of items) item.decision = decision;
    if (!this.current || this.current.decision) this._advance();
    return items;
  }

  /**
   * The clips the next page will show when the newest page is done (the loaded ones, in the
   * order they arrived); none while an older page is shown (labelling there returns to the
   * newest page, which is already built).
   */
  get nextPageIds() {
    return this.page === this.pages.length - 1 ? this.upcoming.slice(0, this.batchSize) : [];
  }

  /** The undecided clips of the current page. */
  get undecidedOnPage() {
    return this.pageIds.filter((id) => !this.items.get(id).decision);
  }

  /**
   * Another view of this widget decided clipId (decision null: undid it). Record it on the
   * clip if this view shows it; a current clip decided elsewhere is passed as after a decision
   * here, and an undone one becomes current when this view has none. A clip whose own event
   * is still pending is left alone: Python handles events in order, so that event comes later
   * and wins. Returns the item when something changed.
   */
  decidedElsewhere(clipId, decision) {
    const item = this.items.get(clipId);
    if (!item || item.state === "pending" || this.upcoming.includes(clipId)) return null;
    if (item.decision === decision && item.state !== "error") return null;
    const wasCurrent = item === this.current;
    item.decision = decision;
    item.state = decision ? "saved" : "new";
    if (decision && wasCurrent) this._advance();
    if (!decision && !this.current) this.goTo(clipId);
    return item;
  }

  /** Move the cursor by delta (+1 next, -1 previous), across pages. */
  move(delta) {
    const ids = this.pageIds;
    const target = this.cursor + delta;
    if (target < 0) {
      if (this.page > 0) {
        this.page -= 1;
        this.cursor = this.pageIds.length - 1;
      }
    } else if (target >= ids.length) {
      if (this.page < this.pages.length - 1) {
        this.page += 1;
        this.cursor = 0;
      } else if (!this._undecidedIn(ids)) {
        this._openPage();
      } else {
        this.cursor = ids.findIndex((id) => !this.items.get(id).decision); // wrap to the first open
      }
    } else {
      this.cursor = target;
    }
  }

  /** Put the cursor on clip_id; returns false when this view does not hold it. */
  goTo(clipId) {
    for (let p = this.pages.length - 1; p >= 0; p--) {
      const i = this.pages[p].indexOf(clipId);
      if (i >= 0) {
        this.page = p;
        this.cursor = i;
        return true;
      }
    }
    const u = this.upcoming.indexOf(clipId);
    if (u >= 0) {
      this.upcoming.splice(u, 1);
      this._insertAtCursor(clipId);
      return true;
    }
    return false;
  }

  /** An undone clip: undecided again and current (inserted into the page if new here). */
  restore(clipId, item) {
    if (!this.goTo(clipId)) {
      if (!item) return null;
      this.items.set(clipId, item);
      this._insertAtCursor(clipId);
    }
    const current = this.current;
    current.decision = null;
    current.state = "new";
    return current;
  }

  /**
   * Several clips undone together (one action): each undecided again, the first one current.
   * `fresh` has items for clips this view does not hold. Returns the restored items.
   * @param {string[]} clipIds @param {any[]} fresh
   */
  restoreMany(clipIds, fresh = []) {
    const byId = new Map(fresh.map((item) => [item.clip_id, item]));
    const restored = [];
    for (const id of clipIds) {
      if (restored.length && !this.items.has(id)) this.cursor += 1; // beside the one before
      const item = this.restore(id, byId.get(id));
      if (item) restored.push(item);
    }
    if (restored.length) this.goTo(restored[0].clip_id);
    return restored;
  }

  /** Drop every undecided clip (a new feed or query replaces them). */
  discardUndecided() {
    const drop = (id) => {
      const item = this.items.get(id);
      if (item.decision) return false;
      this.items.delete(id);
      this.release(item);
      return true;
    };
    this.upcoming = this.upcoming.filter((id) => !drop(id));
    const last = this.pages.length - 1;
    this.pages[last] = this.pages[last].filter((id) => !drop(id));
    this.page = last;
    this.cursor = this.pages[last].length; // past the end: waiting for new clips
  }

  /** Drop upcoming clips that another view already decided (not in Python's queue). */
  retainUpcoming(queueIds) {
    const keep = new Set(queueIds);
    this.upcoming = this.upcoming.filter((id) => {
      if (keep.has(id)) return true;
      this.release(this.items.get(id));
      this.items.delete(id);
      return false;
    });
  }

  clear() {
    for (const item of this.items.values()) this.release(item);
    this.items.clear();
    this.pages = [[]];
    this.page = 0;
    this.cursor = 0;
    this.upcoming = [];
  }

  /** Remove a held clip from its page (the cursor stays on its clip) and release it. */
  _drop(clipId) {
    const p = this.pages.findIndex((ids) => ids.includes(clipId));
    if (p >= 0) {
      const ids = this.pages[p];
      const i = ids.indexOf(clipId);
      ids.splice(i, 1);
      if (p === this.page && i < this.cursor) this.cursor -= 1;
      if (ids.length === 0 && this.pages.length > 1) {
        this.pages.splice(p, 1); // no empty page to land on
        if (p < this.page) this.page -= 1;
        else if (p === this.page && this.page < this.pages.length) this.cursor = 0; // the next page
        else if (p === this.page) {
          this.page -= 1; // the newest page was emptied: the one before it is the newest now
          const open = this.pageIds.findIndex((id) => !this.items.get(id).decision);
          this.cursor = open >= 0 ? open : this.pageIds.length;
        }
      }
    }
    this.release(this.items.get(clipId));
    this.items.delete(clipId);
  }

  _undecidedIn(ids) {
    return ids.some((id) => !this.items.get(id).decision);
  }

  _insertAtCursor(clipId) {
    const ids = this.pageIds;
    this.cursor = Math.min(this.cursor, ids.length);
    ids.splice(this.cursor, 0, clipId);
  }

  _advance() {
    const ids = this.pageIds;
    const open = (i) => !this.items.get(ids[i]).decision;
    for (let i = this.cursor + 1; i < ids.length; i++) if (open(i)) return void (this.cursor = i);
    for (let i = 0; i < this.cursor; i++) if (open(i)) return void (this.cursor = i);
    if (this.page < this.pages.length - 1) {
      // labelling on an older page: return to the newest one
      this.page = this.pages.length - 1;
      this.cursor = Math.max(0, this.pageIds.findIndex((id) => !this.items.get(id).decision));
      if (!this._undecidedIn(this.pageIds)) this._openPage();
      return;
    }
    this._openPage();
  }

  _openPage() {
    const last = this.pages.length - 1;
    const fresh = this.upcoming.splice(0, this.batchSize);
    if (this.pages[last].length === 0) this.pages[last] = fresh;
    else if (fresh.length) this.pages.push(fresh);
    this.page = this.pages.length - 1;
    this.cursor = fresh.length ? 0 : this.pageIds.length; // past the end: waiting
    while (this.pages.length > KEEP_PAGES) {
      for (const id of this.pages.shift() ?? []) {
        this.release(this.items.get(id));
        this.items.delete(id);
      }
      this.page -= 1;
    }
  }
}
