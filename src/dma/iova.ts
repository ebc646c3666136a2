/**
 * IOVA allocation: first fit over the usable ranges of a DMA space (what
 * `DmaSpace.iovaRanges()` reports: inclusive ranges and an alignment), below an
 * optional limit (a device's DMA mask), with a coalescing free list so freed
 * space is reused. Pure bookkeeping: nothing here talks to the kernel.
 *
 * Inside, addresses are counted in units of the alignment and kept in plain
 * numbers (an IOVA over a 4 KiB alignment is below 2^52, exact in a double),
 * in balanced trees over typed arrays: no object and no bigint per block, and
 * every operation walks O(log n) nodes. Bigints appear only at the API.
 */
import { VfioError } from '../errors.js';
import type { IovaRange } from './buffer.js';
import { toU64 } from '../resource.js';

const U64_END = 1n << 64n;
/** Exclusive bound on unit counts: integers below it are exact in a double. */
const UNIT_END = 2 ** 53;
const UNIT_END_BIG = 1n << 53n;
const EINVAL = 22;
const EEXIST = 17;
const ENOENT = 2;
const ENOSPC = 28;

export interface IovaAllocatorOptions {
  /** Every allocation's size and address is a multiple of this (a power of two; default 4096). */
  alignment?: bigint | number;
  /** Lowest IOVA handed out or reserved (default 0). */
  min?: bigint | number;
  /** Exclusive upper bound: every allocation ends at or below it (e.g. 0x10000000 for a 28-bit DMA mask). */
  limit?: bigint | number;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const isPow2 = (v: bigint): boolean => v > 0n && (v & (v - 1n)) === 0n;
const alignUp = (v: bigint, a: bigint): bigint => (v + a - 1n) & -a;

function err(code: 'EINVAL' | 'EEXIST' | 'ENOENT' | 'ENOSPC', message: string, operation: string): VfioError {
  const errno = { EINVAL, EEXIST, ENOENT, ENOSPC }[code];
  return new VfioError({ code, errno, operation, message: `${code}: ${message}` });
}

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
   */
  refresh(x: number): void {
    const path = this.path;
    let d = 0;
    let t = this.root;
    while (t !== x) {
      treeStats.visits++;
      if (t === NIL) throw new Error(`internal: node ${x} is not in the tree`);
      path[d++] = t;
      t = this.less(x, t) ? this.left[t]! : this.right[t]!;
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

  /** The block with the greatest start ≤ `key`, or NIL. */
  floor(key: number): number {
    let t = this.root;
    let best = NIL;
    while (t !== NIL) {
      treeStats.visits++;
      if (this.start[t]! <= key) {
        best = t;
        t = this.right[t]!;
      } else t = this.left[t]!;
    }
    return best;
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
    let t = this.root;
    if (t === NIL || M[t]! < n) return NIL;
    for (;;) {
      treeStats.visits++;
      const l = this.left[t]!;
      if (l !== NIL && M[l]! >= n) t = l;
      else if (this.end[t]! - this.start[t]! >= n) return t;
      else {
        t = this.right[t]!;
        if (t === NIL) throw new Error('internal: the free blocks\' longest-block aggregates are inconsistent');
      }
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

/**
 * Hands out aligned, non-overlapping IOVA ranges. `alloc()` returns the lowest
 * fitting address (first fit); `reserve()` claims a given range (a fixed or
 * kernel-chosen IOVA); `free()` gives an allocation back, merging it with its
 * free neighbours.
 *
 * Cost: alloc, reserve, free and find are O(log n) in the number of
 * allocations and free blocks (alloc with an `align` above the allocator's
 * alignment may also look at blocks that are long enough but too short once
 * aligned); the listings are O(n). Addresses are kept as multiples of the
 * alignment in doubles, exact below 2^53 units: with an alignment under 2 KiB,
 * space above 2^53 × alignment is not used (ranges are clipped there).
 */
export class IovaAllocator {
  readonly alignment: bigint;
  /** The usable space after clipping to [min, limit), as inclusive ranges. */
  readonly ranges: readonly IovaRange[];
  /** @internal The alignment as a number: the unit every internal address counts in. */
  readonly unit: number;
  /** The usable blocks in units (sorted, disjoint, not adjacent). */
  readonly #rangeStart: Float64Array;
  readonly #rangeEnd: Float64Array;
  /** Free blocks, sorted and coalesced. */
  readonly #free = new FreeTree();
  /** Allocations and reservations: start → end. */
  readonly #used = new BTreeMap();
  #freeUnits = 0;

  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions = {}) {
    const alignment = toU64(options.alignment ?? 4096n, 'alignment');
    if (!isPow2(alignment)) throw new RangeError(`alignment must be a power of two, got ${alignment}`);
    this.alignment = alignment;
    this.unit = Number(alignment); // a power of two: exact
    const min = toU64(options.min ?? 0n, 'min');
    let limit = options.limit === undefined ? U64_END : toU64(options.limit, 'limit');
    const unitEnd = UNIT_END_BIG * alignment;
    if (limit > unitEnd) limit = unitEnd;
    const blocks: { start: bigint; end: bigint }[] = [];
    for (const r of ranges) {
      const start = toU64(r.start, 'range start');
      const last = toU64(r.last, 'range last');
      if (last < start) throw new RangeError(`range ${hex(start)}..${hex(last)} ends before it starts`);
      // Only whole aligned units of a range are usable.
      const s = alignUp(start > min ? start : min, alignment);
      const lastEnd = last + 1n < limit ? last + 1n : limit;
      const e = lastEnd & -alignment;
      if (s < e) blocks.push({ start: s, end: e });
    }
    blocks.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const merged: { start: bigint; end: bigint }[] = [];
    for (const b of blocks) {
      const last = merged.at(-1);
      if (last && b.start <= last.end) last.end = b.end > last.end ? b.end : last.end;
      else merged.push(b);
    }
    this.ranges = merged.map((b) => ({ start: b.start, last: b.end - 1n }));
    this.#rangeStart = Float64Array.from(merged, (b) => Number(b.start / alignment));
    this.#rangeEnd = Float64Array.from(merged, (b) => Number(b.end / alignment));
    this.#fillFree();
  }

  #fillFree(): void {
    this.#free.clear();
    this.#freeUnits = 0;
    for (let i = 0; i < this.#rangeStart.length; i++) {
      this.#free.add(this.#rangeStart[i]!, this.#rangeEnd[i]!);
      this.#freeUnits += this.#rangeEnd[i]! - this.#rangeStart[i]!;
    }
  }

  /** Units → bytes. */
  #bytes(units: number): bigint {
    const b = units * this.unit;
    return b < UNIT_END ? BigInt(b) : BigInt(units) * this.alignment;
  }

  /** Bytes (a multiple of the alignment, or rounded down to one) → units; Infinity past the representable space. */
  #units(bytes: bigint): number {
    if (bytes < UNIT_END_BIG) return Math.floor(Number(bytes) / this.unit);
    const u = bytes / this.alignment;
    return u < UNIT_END_BIG ? Number(u) : Infinity;
  }

  /** Bytes still free. */
  get freeBytes(): bigint {
    return this.#bytes(this.#freeUnits);
  }

  /** The largest free block's size. */
  get largestFree(): bigint {
    return this.#bytes(this.#free.longest());
  }

  /** @internal How many allocations (and reservations) are live. */
  get allocationCount(): number {
    return this.#used.size;
  }

  /** The free blocks, as inclusive ranges. */
  freeRanges(): IovaRange[] {
    const out: IovaRange[] = [];
    const f = this.#free;
    f.forEach((t) => out.push({ start: this.#bytes(f.start[t]!), last: this.#bytes(f.end[t]!) - 1n }));
    return out;
  }

  /** The allocations (and reservations), sorted by address. */
  allocations(): { iova: bigint; size: bigint }[] {
    const out: { iova: bigint; size: bigint }[] = [];
    this.#used.forEach((start, end) => out.push({ iova: this.#bytes(start), size: this.#bytes(end - start) }));
    return out;
  }

  #checkSize(size: bigint, operation: string): void {
    if (size === 0n) throw err('EINVAL', 'a zero-length IOVA range', operation);
    if (size % this.alignment !== 0n) throw err('EINVAL', `size ${hex(size)} is not a multiple of the IOVA alignment ${hex(this.alignment)}`, operation);
  }

  /** @internal Validates an `align` option; returns it in units. */
  alignUnits(align: bigint | number): number {
    const a = toU64(align, 'align');
    if (!isPow2(a) || a < this.alignment) throw new RangeError(`align must be a power of two of at least ${this.alignment}, got ${a}`);
    // Aligning to more than the whole representable space is as good as aligning to 0 only.
    const u = a / this.alignment;
    return u < UNIT_END_BIG ? Number(u) : UNIT_END;
  }

  /**
   * The lowest free address of `size` bytes aligned to `align` (default: the
   * allocator's alignment). ENOSPC when nothing fits.
   */
  alloc(size: bigint | number, options: { align?: bigint | number } = {}): bigint {
    const n = toU64(size, 'size');
    this.#checkSize(n, 'IOVA alloc');
    const align = options.align === undefined ? 1 : this.alignUnits(options.align);
    return this.#bytes(this.allocUnits(this.#units(n), align, n, options.align === undefined ? undefined : toU64(options.align, 'align')));
  }

  /**
   * @internal alloc() in units (n a positive whole number of units, align a power
   * of two); `bytes` and `alignBytes` name them in the ENOSPC message.
   */
  allocUnits(n: number, align = 1, bytes?: bigint, alignBytes?: bigint): number {
    const f = this.#free;
    let b: number;
    let start: number;
    if (align === 1) {
      b = f.firstFit(n);
      start = b === NIL ? 0 : f.start[b]!;
    } else {
      b = f.firstFitAligned(n, align);
      start = b === NIL ? 0 : Math.ceil(f.start[b]! / align) * align;
    }
    if (b === NIL) {
      throw err(
        'ENOSPC',
        `no free IOVA range of ${hex(bytes ?? this.#bytes(n))} bytes (aligned to ${hex(alignBytes ?? this.#bytes(align))}) in ${this.#describe()}: ${hex(this.freeBytes)} bytes free, the largest block ${hex(this.largestFree)}`,
        'IOVA alloc',
      );
    }
    this.#take(b, start, n);
    return start;
  }

  /** Claims [iova, iova+size): EINVAL if unaligned or outside the ranges, EEXIST if any of it is taken. */
  reserve(iova: bigint | number, size: bigint | number): void {
    const start = toU64(iova, 'iova');
    const n = toU64(size, 'size');
    this.#checkSize(n, 'IOVA reserve');
    if (start % this.alignment !== 0n) throw err('EINVAL', `IOVA ${hex(start)} is not aligned to ${hex(this.alignment)}`, 'IOVA reserve');
    this.reserveUnits(this.#units(start), this.#units(n), start, n);
  }

  /**
   * @internal reserve() in units (start and n whole, n positive); `startBytes`
   * and `sizeBytes` name them in error messages.
   */
  reserveUnits(start: number, n: number, startBytes?: bigint, sizeBytes?: bigint): void {
    const f = this.#free;
    const end = start + n;
    const b = f.floor(start);
    if (b !== NIL && end <= f.end[b]!) {
      this.#take(b, start, n);
      return;
    }
    const first = startBytes ?? this.#bytes(start);
    const range = `${hex(first)}..${hex(first + (sizeBytes ?? this.#bytes(n)) - 1n)}`;
    if (!this.containsUnits(start, end)) throw err('EINVAL', `IOVA range ${range} is outside the usable ranges (${this.#describe()})`, 'IOVA reserve');
    // Inside a usable range but not inside one free block: the lowest allocation it overlaps.
    const u = this.#used;
    let c = u.floor(start);
    if (c < 0 || u.valueAt(c) <= start) c = u.higher(start);
    throw err('EEXIST', `IOVA range ${range} overlaps ${hex(this.#bytes(u.keyAt(c)))}..${hex(this.#bytes(u.valueAt(c)) - 1n)}`, 'IOVA reserve');
  }

  /** @internal Whether [start, end) (units) lies inside one usable range. */
  containsUnits(start: number, end: number): boolean {
    const rs = this.#rangeStart;
    const re = this.#rangeEnd;
    // Few ranges (one to a handful): a linear scan.
    for (let i = 0; i < rs.length; i++) if (rs[i]! <= start && end <= re[i]!) return true;
    return false;
  }

  /** Gives back the allocation starting at `iova`; returns its size. ENOENT if there is none. */
  free(iova: bigint | number): bigint {
    const start = toU64(iova, 'iova');
    const u = start % this.alignment === 0n ? this.#units(start) : NaN;
    const n = this.freeUnits(u, start);
    return this.#bytes(n);
  }

  /** @internal free() in units; returns the size in units. `bytes` names the IOVA in the ENOENT message. */
  freeUnits(start: number, bytes?: bigint): number {
    const end = this.#used.remove(start);
    if (end < 0) throw err('ENOENT', `no IOVA allocation starts at ${hex(bytes ?? this.#bytes(start))}`, 'IOVA free');
    this.#insertFree(start, end);
    return end - start;
  }

  /** Frees every allocation. */
  reset(): void {
    this.#used.clear();
    this.#fillFree();
  }

  /** The allocation containing `iova`, if any. */
  find(iova: bigint): { iova: bigint; size: bigint } | undefined {
    const at = toU64(iova, 'iova');
    const q = this.#units(at);
    const u = this.#used;
    const h = u.floor(q);
    if (h < 0 || q >= u.valueAt(h)) return undefined;
    return { iova: this.#bytes(u.keyAt(h)), size: this.#bytes(u.valueAt(h) - u.keyAt(h)) };
  }

  #describe(): string {
    return this.ranges.length ? this.ranges.map((r) => `${hex(r.start)}..${hex(r.last)}`).join(', ') : 'no usable range';
  }

  /** Removes [start, start+n) from free block b, which contains it, and records the allocation. */
  #take(b: number, start: number, n: number): void {
    const f = this.#free;
    const bs = f.start[b]!;
    const be = f.end[b]!;
    const end = start + n;
    if (bs === start) {
      if (be === end) f.delete(b);
      else {
        // Still ordered the same: the block only shrinks from the front.
        f.start[b] = end;
        f.refresh(b);
      }
    } else {
      f.end[b] = start;
      f.refresh(b);
      if (end < be) f.add(end, be);
    }
    this.#freeUnits -= n;
    if (!this.#used.set(start, end)) throw new Error(`internal: IOVA allocation ${hex(this.#bytes(start))} recorded twice`);
  }

  /** Inserts the free block [start, end), merging it with adjacent ones. */
  #insertFree(start: number, end: number): void {
    const f = this.#free;
    const prev = f.floor(start);
    const next = f.higher(start);
    if (prev !== NIL && f.end[prev]! > start) throw new Error(`internal: free block ${hex(this.#bytes(start))} overlaps ${hex(this.#bytes(f.start[prev]!))}..${hex(this.#bytes(f.end[prev]!))}`);
    if (next !== NIL && end > f.start[next]!) throw new Error(`internal: free block ${hex(this.#bytes(start))} overlaps ${hex(this.#bytes(f.start[next]!))}..${hex(this.#bytes(f.end[next]!))}`);
    this.#freeUnits += end - start;
    if (prev !== NIL && f.end[prev] === start) {
      if (next !== NIL && f.start[next] === end) {
        const nextEnd = f.end[next]!;
        f.delete(next);
        f.end[prev] = nextEnd;
      } else f.end[prev] = end;
      f.refresh(prev);
    } else if (next !== NIL && f.start[next] === end) {
      f.start[next] = start;
      f.refresh(next);
    } else f.add(start, end);
  }

  /** @internal Sizes of the internal structures (for the complexity tests). */
  stats(): { freeBlocks: number; allocations: number; freeDepth: number; usedHeight: number; freeCapacity: number; usedNodes: number } {
    return {
      freeBlocks: this.#free.count,
      allocations: this.#used.size,
      freeDepth: this.#free.depth(),
      usedHeight: this.#used.height,
      freeCapacity: this.#free.capacity,
      usedNodes: this.#used.nodeCapacity,
    };
  }
}
