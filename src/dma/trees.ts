/**
 * The balanced trees under the DMA bookkeeping, over typed arrays (no object
 * and no bigint per node): an AVL tree base class, the free-block tree that
 * the IOVA allocator searches first fit in, and an ordered number map (a
 * B+tree) for allocations and mappings. Policy lives in iova.ts and mapper.ts;
 * this module is data structures only.
 */
/** @internal "No node". */
export const NIL = -1;

/** @internal Nodes visited by the trees' searches and updates (a counter for the complexity tests). */
export const treeStats = { visits: 0 };

/**
 * @internal An AVL tree over node ids 0..capacity-1 whose keys live in columns
 * the subclass owns (so a node costs 9 bytes of links and no object). `less`
 * orders two nodes; subclasses may keep a per-subtree aggregate in `pullAug`.
 * Insert and remove walk one root-to-leaf path (at most 1.44·log2(n+2) nodes)
 * and rebalance on the way back up.
 */
export abstract class AvlTree {
  left = new Int32Array(0);
  right = new Int32Array(0);
  height = new Uint8Array(0);
  root = NIL;
  /** Nodes in the tree. */
  count = 0;
  // Deeper than any AVL tree over 2^32 nodes can be.
  protected readonly path = new Int32Array(96);
  /**
   * The root-to-node path of the last search that records one (the free
   * blocks' firstFit, floor and neighbours): trail[0] is the root and
   * trail[lastDepth] the node found. refresh() reuses it instead of walking
   * down again while the tree's shape is the one it was recorded in.
   */
  protected readonly trail = new Int32Array(96);
  /** The index in `trail` of the node the last recording search found (-1: none). */
  lastDepth = -1;
  #trailShape = -1;
  /** Bumped by every insert and remove (rotations happen only inside those). */
  #shape = 0;

  /** Marks `trail` as recorded in the current shape. */
  protected recorded(): void {
    this.#trailShape = this.#shape;
  }

  /** Whether node a sorts before node b (a strict total order on the nodes in the tree). */
  protected abstract less(a: number, b: number): boolean;

  /** Recomputes t's aggregate from its children; returns whether it changed. */
  protected pullAug(_t: number): boolean {
    return false;
  }

  /** Gives node `to` the aggregate `from` has (when `to` takes `from`'s place in the tree). */
  protected copyAug(_from: number, _to: number): void {}

  /** Grows the link columns to `capacity` nodes. */
  protected resizeLinks(capacity: number): void {
    const l = new Int32Array(capacity);
    l.set(this.left);
    this.left = l;
    const r = new Int32Array(capacity);
    r.set(this.right);
    this.right = r;
    const h = new Uint8Array(capacity);
    h.set(this.height);
    this.height = h;
  }

  /** Recomputes t's height and aggregate; returns whether either changed. */
  private pull(t: number): boolean {
    const H = this.height;
    const l = this.left[t]!;
    const r = this.right[t]!;
    const hl = l < 0 ? 0 : H[l]!;
    const hr = r < 0 ? 0 : H[r]!;
    const h = (hl > hr ? hl : hr) + 1;
    const aug = this.pullAug(t);
    if (H[t] !== h) {
      H[t] = h;
      return true;
    }
    return aug;
  }

  private rotateRight(t: number): number {
    const L = this.left;
    const c = L[t]!;
    L[t] = this.right[c]!;
    this.right[c] = t;
    this.pull(t);
    this.pull(c);
    return c;
  }

  private rotateLeft(t: number): number {
    const R = this.right;
    const c = R[t]!;
    R[t] = this.left[c]!;
    this.left[c] = t;
    this.pull(t);
    this.pull(c);
    return c;
  }

  private h(t: number): number {
    return t < 0 ? 0 : this.height[t]!;
  }

  /** Restores the AVL balance at t (its children balanced); returns the subtree's new root. */
  private balance(t: number): number {
    const L = this.left;
    const R = this.right;
    const H = this.height;
    const l = L[t]!;
    const r = R[t]!;
    const hl = l < 0 ? 0 : H[l]!;
    const hr = r < 0 ? 0 : H[r]!;
    if (hl <= hr + 1 && hr <= hl + 1) return t;
    if (hl > hr + 1) {
      const c = L[t]!;
      if (this.h(R[c]!) > this.h(L[c]!)) L[t] = this.rotateLeft(c);
      return this.rotateRight(t);
    }
    if (hr > hl + 1) {
      const c = R[t]!;
      if (this.h(L[c]!) > this.h(R[c]!)) R[t] = this.rotateRight(c);
      return this.rotateLeft(t);
    }
    return t;
  }

  /**
   * Updates path[d-1] … path[0] bottom-up, rotating where needed. From path
   * index `stopBelow` down to 0 it stops at the first node that neither rotated
   * nor changed (nothing above it can change then).
   */
  private retrace(d: number, stopBelow: number): void {
    const path = this.path;
    for (let i = d - 1; i >= 0; i--) {
      treeStats.visits++;
      const t = path[i]!;
      const changed = this.pull(t);
      const nt = this.balance(t);
      if (nt !== t) {
        if (i === 0) this.root = nt;
        else {
          const p = path[i - 1]!;
          if (this.left[p] === t) this.left[p] = nt;
          else this.right[p] = nt;
        }
      } else if (!changed && i <= stopBelow) return;
    }
  }

  /** Adds node x (its key columns set). */
  insert(x: number): void {
    this.#shape++;
    const L = this.left;
    const R = this.right;
    L[x] = NIL;
    R[x] = NIL;
    this.height[x] = 1;
    this.pullAug(x);
    this.count++;
    let t = this.root;
    if (t === NIL) {
      this.root = x;
      return;
    }
    const path = this.path;
    let d = 0;
    for (;;) {
      treeStats.visits++;
      path[d++] = t;
      if (this.less(x, t)) {
        const c = L[t]!;
        if (c === NIL) {
          L[t] = x;
          break;
        }
        t = c;
      } else {
        const c = R[t]!;
        if (c === NIL) {
          R[t] = x;
          break;
        }
        t = c;
      }
    }
    this.retrace(d, d);
  }

  /** Removes node x, which is in the tree. */
  remove(x: number): void {
    this.#shape++;
    const L = this.left;
    const R = this.right;
    const path = this.path;
    let d = 0;
    let t = this.root;
    while (t !== x) {
      treeStats.visits++;
      if (t === NIL) throw new Error(`internal: node ${x} is not in the tree`);
      path[d++] = t;
      t = this.less(x, t) ? L[t]! : R[t]!;
    }
    const xi = d;
    const l = L[x]!;
    const r = R[x]!;
    let repl: number;
    if (l === NIL || r === NIL) repl = l === NIL ? r : l;
    else {
      // x's successor s (the leftmost node of its right subtree) takes its place.
      path[d++] = x;
      let s = r;
      if (L[s] === NIL) L[s] = l;
      else {
        while (L[s] !== NIL) {
          treeStats.visits++;
          path[d++] = s;
          s = L[s]!;
        }
        L[path[d - 1]!] = R[s]!;
        L[s] = l;
        R[s] = r;
      }
      path[xi] = s;
      repl = s;
      // s starts from x's height and aggregate, so the retrace sees what changed where x was.
      this.height[s] = this.height[x]!;
      this.copyAug(x, s);
    }
    if (xi === 0) this.root = repl;
    else {
      const p = path[xi - 1]!;
      if (L[p] === x) L[p] = repl;
      else R[p] = repl;
    }
    this.count--;
    // Below xi (where s came from) every node is redone: s's copied aggregate is right only once recomputed.
    this.retrace(d, xi);
  }

  /**
   * After x's key or aggregate changed without changing its place in the order:
   * updates the aggregates from x up (heights do not change), stopping where one does not.
   * `depth`: where x is in the last recorded trail, when a search just found it
   * (the trail is then x's path, if the shape is unchanged and trail[depth] is x).
   */
  refresh(x: number, depth = -1): void {
    let path: Int32Array;
    let d = 0;
    if (depth >= 0 && this.#trailShape === this.#shape && this.trail[depth] === x) {
      path = this.trail;
      d = depth;
    } else {
      path = this.path;
      let t = this.root;
      while (t !== x) {
        treeStats.visits++;
        if (t === NIL) throw new Error(`internal: node ${x} is not in the tree`);
        path[d++] = t;
        t = this.less(x, t) ? this.left[t]! : this.right[t]!;
      }
    }
    if (!this.pullAug(x)) return;
    while (d > 0 && this.pullAug(path[--d]!)) treeStats.visits++;
  }

  /** Empties the tree (the nodes' columns are the owner's business). */
  clear(): void {
    this.root = NIL;
    this.count = 0;
  }

  /** Calls f on every node in order. */
  forEach(f: (node: number) => void): void {
    const stack: number[] = [];
    let t = this.root;
    while (t !== NIL || stack.length > 0) {
      while (t !== NIL) {
        stack.push(t);
        t = this.left[t]!;
      }
      t = stack.pop()!;
      f(t);
      t = this.right[t]!;
    }
  }

  /** The tree's height (0 when empty): the longest path any operation walks. */
  depth(): number {
    return this.h(this.root);
  }
}

/**
 * @internal The free blocks: disjoint half-open spans [start, end) in units,
 * ordered by start, each subtree knowing its longest block (so first fit is one
 * walk down), in their own node pool (free nodes are chained through `left`).
 */
export class FreeTree extends AvlTree {
  start: Float64Array = new Float64Array(0);
  end: Float64Array = new Float64Array(0);
  maxLen: Float64Array = new Float64Array(0);
  #capacity = 0;
  #top = 0;
  #freeHead = NIL;

  protected override less(a: number, b: number): boolean {
    return this.start[a]! < this.start[b]!;
  }

  protected override resizeLinks(capacity: number): void {
    super.resizeLinks(capacity);
    const grow = (a: Float64Array): Float64Array => {
      const b = new Float64Array(capacity);
      b.set(a);
      return b;
    };
    this.start = grow(this.start);
    this.end = grow(this.end);
    this.maxLen = grow(this.maxLen);
  }

  protected override pullAug(t: number): boolean {
    const M = this.maxLen;
    let m = this.end[t]! - this.start[t]!;
    const l = this.left[t]!;
    const r = this.right[t]!;
    if (l !== NIL && M[l]! > m) m = M[l]!;
    if (r !== NIL && M[r]! > m) m = M[r]!;
    if (M[t] === m) return false;
    M[t] = m;
    return true;
  }

  protected override copyAug(from: number, to: number): void {
    this.maxLen[to] = this.maxLen[from]!;
  }

  /** Adds the block [start, end); returns its node. */
  add(start: number, end: number): number {
    let x = this.#freeHead;
    if (x !== NIL) this.#freeHead = this.left[x]!;
    else {
      if (this.#top === this.#capacity) {
        this.#capacity = this.#capacity < 16 ? 16 : this.#capacity * 2;
        this.resizeLinks(this.#capacity);
      }
      x = this.#top++;
    }
    this.start[x] = start;
    this.end[x] = end;
    this.insert(x);
    return x;
  }

  /** Removes node x and recycles it. */
  delete(x: number): void {
    this.remove(x);
    this.left[x] = this.#freeHead;
    this.#freeHead = x;
  }

  /** Drops every block and node. */
  override clear(): void {
    super.clear();
    this.#top = 0;
    this.#freeHead = NIL;
  }

  /** The block with the greatest start ≤ `key`, or NIL (its place in the trail: lastDepth). */
  floor(key: number): number {
    this.neighbours(key);
    this.lastDepth = this.floorDepth;
    return this.floorNode;
  }

  /** What neighbours() found: the floor and the higher block of the key, and their places in the trail. */
  floorNode = NIL;
  floorDepth = -1;
  higherNode = NIL;
  higherDepth = -1;

  /**
   * The blocks with the greatest start ≤ `key` and the least start > `key`
   * (floorNode, higherNode; NIL when none), in one walk down: every node on the
   * way is one or the other side of the key. Records the walk in the trail.
   */
  neighbours(key: number): void {
    const trail = this.trail;
    let t = this.root;
    let floor = NIL;
    let higher = NIL;
    let fd = -1;
    let hd = -1;
    let d = 0;
    while (t !== NIL) {
      treeStats.visits++;
      trail[d] = t;
      if (this.start[t]! <= key) {
        floor = t;
        fd = d;
        t = this.right[t]!;
      } else {
        higher = t;
        hd = d;
        t = this.left[t]!;
      }
      d++;
    }
    this.floorNode = floor;
    this.floorDepth = fd;
    this.higherNode = higher;
    this.higherDepth = hd;
    this.recorded();
  }

  /** The block with the least start > `key`, or NIL. */
  higher(key: number): number {
    let t = this.root;
    let best = NIL;
    while (t !== NIL) {
      treeStats.visits++;
      if (this.start[t]! > key) {
        best = t;
        t = this.left[t]!;
      } else t = this.right[t]!;
    }
    return best;
  }

  /** Node slots allocated (live plus recyclable): what the columns hold. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The longest block's length (0 when none). */
  longest(): number {
    return this.root === NIL ? 0 : this.maxLen[this.root]!;
  }

  /** The lowest block at least n long, or NIL. */
  firstFit(n: number): number {
    const M = this.maxLen;
    const trail = this.trail;
    let t = this.root;
    if (t === NIL || M[t]! < n) return NIL;
    let d = 0;
    for (;;) {
      treeStats.visits++;
      trail[d] = t;
      const l = this.left[t]!;
      if (l !== NIL && M[l]! >= n) t = l;
      else if (this.end[t]! - this.start[t]! >= n) {
        this.lastDepth = d;
        this.recorded();
        return t;
      } else {
        t = this.right[t]!;
        if (t === NIL) throw new Error('internal: the free blocks\' longest-block aggregates are inconsistent');
      }
      d++;
    }
  }

  /** The lowest block holding n units at a multiple of `align` units, or NIL. Skips subtrees with no block n long. */
  firstFitAligned(n: number, align: number, t = this.root): number {
    if (t === NIL || this.maxLen[t]! < n) return NIL;
    treeStats.visits++;
    const found = this.firstFitAligned(n, align, this.left[t]!);
    if (found !== NIL) return found;
    const s = Math.ceil(this.start[t]! / align) * align;
    if (s + n <= this.end[t]!) return t;
    return this.firstFitAligned(n, align, this.right[t]!);
  }
}

/** Entries per B+tree node (a power of two). */
const B = 32;
const B_SHIFT = 5;
/** A non-root node with fewer entries than this is merged with or refilled from a sibling. */
const B_MIN = B >> 2;

/**
 * @internal An ordered map from numbers to non-negative numbers: a B+tree of
 * 32-entry nodes in typed arrays (16 bytes an entry in a full leaf, no object
 * per entry). get, set, remove, floor and higher visit one node per level;
 * every node but the root and the last of its level keeps 8 entries or more,
 * so there are about log8(n) + 2 levels at most (4 for 64k entries filled in
 * order). Every node holds (key, payload) pairs: a leaf's payload is the value,
 * an internal node's is a child, keyed by the child's smallest key. Appends at
 * the top end go straight to the last leaf, which splits unevenly, so a table
 * that grows upwards keeps its nodes full; removals merge a node only into one
 * with room to spare, so an insert and a remove at a node's edge cannot split
 * and merge every time.
 */
export class BTreeMap {
  keys = new Float64Array(0);
  vals = new Float64Array(0);
  counts = new Uint8Array(0);
  /** The next node on the same level (leaves: the next leaf in order); chains free nodes too. */
  next = new Int32Array(0);
  root: number;
  /** The last leaf: appends and removals at the top end of the keys work on it directly. */
  #last: number;
  /** Levels: 1 while the root is a leaf. */
  height = 1;
  /** Entries in the map. */
  size = 0;
  #nodes = 0;
  #top = 0;
  #freeHead = NIL;
  // The last descent: the internal nodes on the path and the child taken in each.
  readonly #pathNode = new Int32Array(24);
  readonly #pathIdx = new Int32Array(24);
  #depth = 0;

  constructor() {
    this.root = this.#newNode();
    this.#last = this.root;
  }

  #newNode(): number {
    let x = this.#freeHead;
    if (x !== NIL) this.#freeHead = this.next[x]!;
    else {
      if (this.#top === this.#nodes) {
        const n = this.#nodes < 4 ? 4 : this.#nodes + (this.#nodes >> 1);
        const k = new Float64Array(n << B_SHIFT);
        k.set(this.keys);
        this.keys = k;
        const v = new Float64Array(n << B_SHIFT);
        v.set(this.vals);
        this.vals = v;
        const c = new Uint8Array(n);
        c.set(this.counts);
        this.counts = c;
        const nx = new Int32Array(n);
        nx.set(this.next);
        this.next = nx;
        this.#nodes = n;
      }
      x = this.#top++;
    }
    this.counts[x] = 0;
    this.next[x] = NIL;
    return x;
  }

  #freeNode(x: number): void {
    this.next[x] = this.#freeHead;
    this.#freeHead = x;
  }

  /** Empties the map. */
  clear(): void {
    this.#top = 0;
    this.#freeHead = NIL;
    this.height = 1;
    this.size = 0;
    this.root = this.#newNode();
    this.#last = this.root;
  }

  /** Walks from the root to the leaf where `key` belongs, recording the path; returns the leaf. */
  #descend(key: number): number {
    const K = this.keys;
    const V = this.vals;
    let node = this.root;
    let d = 0;
    for (let level = this.height; level > 1; level--) {
      treeStats.visits++;
      const base = node << B_SHIFT;
      // The last child whose smallest key is ≤ key (the first one if none is).
      let lo = 0;
      let hi = this.counts[node]! - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (K[base + mid]! <= key) lo = mid;
        else hi = mid - 1;
      }
      this.#pathNode[d] = node;
      this.#pathIdx[d] = lo;
      d++;
      node = V[base + lo]!;
    }
    treeStats.visits++;
    this.#depth = d;
    return node;
  }

  /** In a node: the index of the first key > `key`. */
  #upper(node: number, key: number): number {
    const K = this.keys;
    const base = node << B_SHIFT;
    let lo = 0;
    let hi = this.counts[node]!;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (K[base + mid]! <= key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The index in the last leaf where `key` would go, or -1 if it belongs further left. */
  #inLast(key: number): number {
    const leaf = this.#last;
    const n = this.counts[leaf]!;
    const base = leaf << B_SHIFT;
    if (n === 0 || key < this.keys[base]!) return this.size === 0 ? 0 : -1;
    treeStats.visits++;
    return this.keys[base + n - 1]! < key ? n : this.#upper(leaf, key);
  }

  /** The value under `key`, or -1. */
  get(key: number): number {
    const p = this.#inLast(key);
    if (p >= 0) {
      const h = (this.#last << B_SHIFT) + p - 1;
      return p > 0 && this.keys[h] === key ? this.vals[h]! : -1;
    }
    const leaf = this.#descend(key);
    const i = this.#upper(leaf, key) - 1;
    const h = (leaf << B_SHIFT) + i;
    return i >= 0 && this.keys[h] === key ? this.vals[h]! : -1;
  }

  /** Adds `key` with `value` (≥ 0); false (and nothing changed) if `key` is already there. */
  set(key: number, value: number): boolean {
    const last = this.#last;
    const n = this.counts[last]!;
    if (n < B && (n === 0 ? this.size === 0 : this.keys[(last << B_SHIFT) + n - 1]! < key)) {
      // Past every key, with room in the last leaf: no descent, no separator to fix.
      treeStats.visits++;
      const h = (last << B_SHIFT) + n;
      this.keys[h] = key;
      this.vals[h] = value;
      this.counts[last] = n + 1;
      this.size++;
      return true;
    }
    const leaf = this.#descend(key);
    const p = this.#upper(leaf, key);
    if (p > 0 && this.keys[(leaf << B_SHIFT) + p - 1] === key) return false;
    this.#insertAt(leaf, p, key, value, this.#depth);
    this.size++;
    return true;
  }

  /** Removes `key`; returns its value, or -1 if it was not there. */
  remove(key: number): number {
    const p = this.#inLast(key);
    const last = this.#last;
    const n = this.counts[last]!;
    if (p > 1 && (n > B_MIN || last === this.root)) {
      // In the last leaf, not its smallest key, and the leaf keeps enough: no descent needed.
      const base = last << B_SHIFT;
      if (this.keys[base + p - 1] !== key) return -1;
      const value = this.vals[base + p - 1]!;
      for (let i = base + p - 1; i < base + n - 1; i++) {
        this.keys[i] = this.keys[i + 1]!;
        this.vals[i] = this.vals[i + 1]!;
      }
      this.counts[last] = n - 1;
      this.size--;
      return value;
    }
    if (p === 0 || (p > 0 && this.keys[(last << B_SHIFT) + p - 1] !== key)) return -1;
    const leaf = this.#descend(key);
    const i = this.#upper(leaf, key) - 1;
    const h = (leaf << B_SHIFT) + i;
    if (i < 0 || this.keys[h] !== key) return -1;
    const value = this.vals[h]!;
    this.#removeAt(leaf, i, this.#depth);
    this.size--;
    return value;
  }

  /** A handle on the entry with the greatest key ≤ `key`, or -1 (valid until the map changes). */
  floor(key: number): number {
    const leaf = this.#descend(key);
    const i = this.#upper(leaf, key) - 1;
    // Separators are exact minimums: only a key below the whole map finds nothing in its leaf.
    return i >= 0 ? (leaf << B_SHIFT) + i : -1;
  }

  /** A handle on the entry with the least key > `key`, or -1. */
  higher(key: number): number {
    const leaf = this.#descend(key);
    const i = this.#upper(leaf, key);
    if (i < this.counts[leaf]!) return (leaf << B_SHIFT) + i;
    const n = this.next[leaf]!;
    return n === NIL ? -1 : n << B_SHIFT;
  }

  /** The key of a handle. */
  keyAt(h: number): number {
    return this.keys[h]!;
  }

  /** The value of a handle. */
  valueAt(h: number): number {
    return this.vals[h]!;
  }

  /** Calls f on every entry in key order. */
  forEach(f: (key: number, value: number) => void): void {
    let node = this.root;
    for (let level = this.height; level > 1; level--) node = this.vals[node << B_SHIFT]!;
    for (; node !== NIL; node = this.next[node]!) {
      const base = node << B_SHIFT;
      const n = this.counts[node]!;
      for (let i = 0; i < n; i++) f(this.keys[base + i]!, this.vals[base + i]!);
    }
  }

  /** Nodes allocated (in use or recyclable). */
  get nodeCapacity(): number {
    return this.#nodes;
  }

  /** A node's smallest key changed to `key`: fixes the separators above it (path levels d-1 … 0). */
  #fixMin(d: number, key: number): void {
    for (let i = d - 1; i >= 0; i--) {
      const pi = this.#pathIdx[i]!;
      this.keys[(this.#pathNode[i]! << B_SHIFT) + pi] = key;
      if (pi !== 0) return;
    }
  }

  /** Inserts (key, value) at index p of `node`, which sits below path levels 0 … d-1; splits when full. */
  #insertAt(node: number, p: number, key: number, value: number, d: number): void {
    const n = this.counts[node]!;
    if (n < B) {
      const K = this.keys;
      const V = this.vals;
      const base = node << B_SHIFT;
      for (let i = base + n; i > base + p; i--) {
        K[i] = K[i - 1]!;
        V[i] = V[i - 1]!;
      }
      K[base + p] = key;
      V[base + p] = value;
      this.counts[node] = n + 1;
      if (p === 0) this.#fixMin(d, key);
      return;
    }
    // Full: move the upper part to a new right sibling. Appending at the right edge, a leaf
    // moves nothing and an internal node one child (so a table growing upwards keeps its nodes
    // full, and every internal node keeps two children: each non-root node has a sibling).
    const right = this.#newNode();
    const K = this.keys;
    const V = this.vals;
    const at = p === n && this.next[node] === NIL ? (d === this.#depth ? n : n - 1) : n >> 1;
    const base = node << B_SHIFT;
    const rbase = right << B_SHIFT;
    for (let i = at; i < n; i++) {
      K[rbase + i - at] = K[base + i]!;
      V[rbase + i - at] = V[base + i]!;
    }
    this.counts[node] = at;
    this.counts[right] = n - at;
    this.next[right] = this.next[node]!;
    this.next[node] = right;
    if (node === this.#last) this.#last = right;
    if (p < at) this.#insertAt(node, p, key, value, d);
    else {
      // Into the new node, whose separator is written below.
      const q = rbase + p - at;
      for (let i = rbase + n - at; i > q; i--) {
        K[i] = K[i - 1]!;
        V[i] = V[i - 1]!;
      }
      K[q] = key;
      V[q] = value;
      this.counts[right] = n - at + 1;
    }
    const rmin = this.keys[rbase]!;
    if (d === 0) {
      const r = this.#newNode();
      const rb = r << B_SHIFT;
      this.keys[rb] = this.keys[base]!;
      this.vals[rb] = node;
      this.keys[rb + 1] = rmin;
      this.vals[rb + 1] = right;
      this.counts[r] = 2;
      this.root = r;
      this.height++;
    } else this.#insertAt(this.#pathNode[d - 1]!, this.#pathIdx[d - 1]! + 1, rmin, right, d - 1);
  }

  /** Removes index p of `node` (below path levels 0 … d-1); merges or refills an underfull node. */
  #removeAt(node: number, p: number, d: number): void {
    const K = this.keys;
    const V = this.vals;
    const base = node << B_SHIFT;
    const n = this.counts[node]! - 1;
    for (let i = base + p; i < base + n; i++) {
      K[i] = K[i + 1]!;
      V[i] = V[i + 1]!;
    }
    this.counts[node] = n;
    if (d === 0) {
      // An internal root left with one child hands over to it.
      if (this.height > 1 && n === 1) {
        this.root = V[base]!;
        this.height--;
        this.#freeNode(node);
      }
      return;
    }
    if (p === 0 && n > 0) this.#fixMin(d, K[base]!);
    if (n >= B_MIN) return;
    const parent = this.#pathNode[d - 1]!;
    const pi = this.#pathIdx[d - 1]!;
    const pbase = parent << B_SHIFT;
    let left: number;
    let right: number;
    let ri: number;
    if (pi + 1 < this.counts[parent]!) {
      left = node;
      right = V[pbase + pi + 1]!;
      ri = pi + 1;
    } else {
      // The last child: pair with its left sibling (every internal node has two children or more).
      left = V[pbase + pi - 1]!;
      right = node;
      ri = pi;
    }
    const lb = left << B_SHIFT;
    const rb = right << B_SHIFT;
    const ln = this.counts[left]!;
    const rn = this.counts[right]!;
    // Merge only into a node with room to spare (so a pair of inserts and removes at a full node's
    // edge cannot split and merge every time); otherwise even the two out.
    if (ln + rn <= B - B_MIN) {
      for (let i = 0; i < rn; i++) {
        K[lb + ln + i] = K[rb + i]!;
        V[lb + ln + i] = V[rb + i]!;
      }
      this.counts[left] = ln + rn;
      this.next[left] = this.next[right]!;
      if (right === this.#last) this.#last = left;
      this.#freeNode(right);
      if (ln === 0) this.#fixMin(d, K[lb]!); // left is node, and was empty: its smallest key is right's
      this.#removeAt(parent, ri, d - 1);
      return;
    }
    const half = (ln + rn) >> 1;
    if (ln < half) {
      const k = half - ln;
      for (let i = 0; i < k; i++) {
        K[lb + ln + i] = K[rb + i]!;
        V[lb + ln + i] = V[rb + i]!;
      }
      for (let i = 0; i < rn - k; i++) {
        K[rb + i] = K[rb + i + k]!;
        V[rb + i] = V[rb + i + k]!;
      }
      this.counts[left] = half;
      this.counts[right] = rn - k;
      if (ln === 0) this.#fixMin(d, K[lb]!);
    } else {
      const k = ln - half;
      for (let i = rn - 1; i >= 0; i--) {
        K[rb + i + k] = K[rb + i]!;
        V[rb + i + k] = V[rb + i]!;
      }
      for (let i = 0; i < k; i++) {
        K[rb + i] = K[lb + half + i]!;
        V[rb + i] = V[lb + half + i]!;
      }
      this.counts[left] = half;
      this.counts[right] = rn + k;
    }
    K[pbase + ri] = K[rb]!;
  }
}
