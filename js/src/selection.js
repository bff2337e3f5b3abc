// The cards selected on the current page: click one, Shift+click (or Shift+arrow) a range from
// the anchor, Ctrl/Cmd+click to add or remove one. The label keys then label the selection.
// Pure logic, no DOM.

export class Selection {
  constructor() {
    /** @type {Set<string>} */
    this.ids = new Set();
    /** @type {string | null} where a range starts */
    this.anchor = null;
  }

  get size() {
    return this.ids.size;
  }

  /** @param {string} clipId */
  has(clipId) {
    return this.ids.has(clipId);
  }

  clear() {
    this.ids.clear();
    this.anchor = null;
  }

  /** Add or remove one clip (Ctrl/Cmd+click); it becomes the anchor. @param {string} clipId */
  toggle(clipId) {
    if (this.ids.has(clipId)) this.ids.delete(clipId);
    else this.ids.add(clipId);
    this.anchor = clipId;
  }

  /**
   * Select the clips of `pageIds` from the anchor to `clipId` (Shift+click, Shift+arrow); with
   * no anchor yet, `from` (the clip that was current) is the anchor.
   * @param {string[]} pageIds @param {string} clipId @param {string | null} from
   */
  extendTo(pageIds, clipId, from) {
    this.anchor ??= from ?? clipId;
    let a = pageIds.indexOf(this.anchor);
    const b = pageIds.indexOf(clipId);
    if (b < 0) return;
    if (a < 0) {
      this.anchor = clipId;
      a = b;
    }
    this.ids = new Set(pageIds.slice(Math.min(a, b), Math.max(a, b) + 1));
  }

  /** The selected clips, in page order. @param {string[]} pageIds */
  inOrder(pageIds) {
    return pageIds.filter((id) => this.ids.has(id));
  }
}
