/**
 * The DmaMapper's mapping table as data structures only: typed-array columns
 * per mapping, a B+tree from IOVA to slot, and an interval index from
 * (buffer, offset) to the mappings that cover it. The policy (what may be
 * mapped, when, and what the kernel is asked) is in mapper.ts.
 */
import type { DmaBuffer } from './buffer.js';
import { AvlTree, BTreeMap, NIL } from './trees.js';

/**
 * @internal The mapping table: one slot per mapping in typed-array columns (IOVA, size
 * and offset in units of the IOVA alignment), and a B+tree from IOVA to slot.
 * About 53 bytes a mapping plus the tree's 16 or so; no object and no bigint.
 */
export class MappingTable {
  iova: Float64Array = new Float64Array(0);
  size: Float64Array = new Float64Array(0);
  offset: Float64Array = new Float64Array(0);
  bufferId: Float64Array = new Float64Array(0);
  /** When it was mapped (map() calls so far): lookup() prefers the earliest mapping. */
  seq: Float64Array = new Float64Array(0);
  /** F_* | P_*; 0 for a free slot. */
  flags = new Uint8Array(0);
  /** Chains the free slots. */
  #chain = new Int32Array(0);
  buffers: (DmaBuffer | undefined)[] = [];
  /** IOVA (units) → slot. */
  readonly byIova = new BTreeMap();
  vaddr: VaddrIndex | null = null;
  capacity = 0;
  #top = 0;
  #freeHead = NIL;

  #grow(capacity: number): void {
    const grow = (a: Float64Array): Float64Array => {
      const b = new Float64Array(capacity);
      b.set(a);
      return b;
    };
    this.iova = grow(this.iova);
    this.size = grow(this.size);
    this.offset = grow(this.offset);
    this.bufferId = grow(this.bufferId);
    this.seq = grow(this.seq);
    const f = new Uint8Array(capacity);
    f.set(this.flags);
    this.flags = f;
    const c = new Int32Array(capacity);
    c.set(this.#chain);
    this.#chain = c;
    this.capacity = capacity;
    this.vaddr?.grow(capacity);
  }

  /** A free slot (fill its columns, then insert()). */
  slot(): number {
    const x = this.#freeHead;
    if (x !== NIL) {
      this.#freeHead = this.#chain[x]!;
      return x;
    }
    if (this.#top === this.capacity) this.#grow(this.capacity < 64 ? 64 : this.capacity * 2);
    return this.#top++;
  }

  /** Indexes slot x; false (and nothing indexed) if a mapping already starts at its IOVA. */
  insert(x: number): boolean {
    if (!this.byIova.set(this.iova[x]!, x)) return false;
    this.vaddr?.insert(x);
    return true;
  }

  /** Takes slot x out of the indexes and recycles it. */
  delete(x: number): void {
    this.byIova.remove(this.iova[x]!);
    this.vaddr?.remove(x);
    this.discard(x);
  }

  /** Recycles slot x, which no index holds. */
  discard(x: number): void {
    this.flags[x] = 0;
    this.buffers[x] = undefined;
    this.#chain[x] = this.#freeHead;
    this.#freeHead = x;
  }

  clear(): void {
    this.byIova.clear();
    this.vaddr?.clear();
    this.flags.fill(0);
    this.buffers = [];
    this.#top = 0;
    this.#freeHead = NIL;
  }

  get count(): number {
    return this.byIova.size;
  }

  /** The mapping starting at unit `iova`, or NIL. */
  get(iova: number): number {
    return this.byIova.get(iova);
  }

  /** The mapping with the greatest IOVA ≤ `iova`, or NIL. */
  floor(iova: number): number {
    const h = this.byIova.floor(iova);
    return h < 0 ? NIL : this.byIova.valueAt(h);
  }

  /** The mapping with the least IOVA > `iova`, or NIL. */
  higher(iova: number): number {
    const h = this.byIova.higher(iova);
    return h < 0 ? NIL : this.byIova.valueAt(h);
  }

  /** Calls f on every slot in IOVA order. */
  forEach(f: (x: number) => void): void {
    this.byIova.forEach((_iova, x) => f(x));
  }
}

/**
 * @internal vaddr → iova: the same slots ordered by (buffer, offset, seq), each subtree
 * knowing the highest offset+size in it, so "which mapping covers byte q of
 * buffer b" is an interval stab in O(log n) (plus one step per other covering mapping).
 */
export class VaddrIndex extends AvlTree {
  vmax = new Float64Array(0);
  /** Nodes the stabs visited (for the complexity tests). */
  stabVisits = 0;
  #best = NIL;
  #bestSeq = Infinity;

  constructor(readonly table: MappingTable) {
    super();
    this.grow(table.capacity);
  }

  grow(capacity: number): void {
    this.resizeLinks(capacity);
    const m = new Float64Array(capacity);
    m.set(this.vmax);
    this.vmax = m;
  }

  protected override less(a: number, b: number): boolean {
    const t = this.table;
    const ba = t.bufferId[a]!;
    const bb = t.bufferId[b]!;
    if (ba !== bb) return ba < bb;
    const oa = t.offset[a]!;
    const ob = t.offset[b]!;
    if (oa !== ob) return oa < ob;
    return t.seq[a]! < t.seq[b]!;
  }

  protected override pullAug(x: number): boolean {
    const M = this.vmax;
    let m = this.table.offset[x]! + this.table.size[x]!;
    const l = this.left[x]!;
    const r = this.right[x]!;
    if (l !== NIL && M[l]! > m) m = M[l]!;
    if (r !== NIL && M[r]! > m) m = M[r]!;
    if (M[x] === m) return false;
    M[x] = m;
    return true;
  }

  protected override copyAug(from: number, to: number): void {
    this.vmax[to] = this.vmax[from]!;
  }

  /** The earliest mapping of buffer `id` covering unit `q` of it, or NIL. */
  stab(id: number, q: number): number {
    this.#best = NIL;
    this.#bestSeq = Infinity;
    this.#stab(this.root, id, q);
    return this.#best;
  }

  #stab(t: number, id: number, q: number): void {
    const T = this.table;
    while (t !== NIL) {
      this.stabVisits++;
      // Nothing in this subtree ends past q: none of it covers q.
      if (this.vmax[t]! <= q) return;
      const b = T.bufferId[t]!;
      if (b > id || (b === id && T.offset[t]! > q)) {
        t = this.left[t]!; // t and everything right of it start past q
        continue;
      }
      if (b < id) {
        t = this.right[t]!;
        continue;
      }
      if (T.offset[t]! + T.size[t]! > q && T.seq[t]! < this.#bestSeq) {
        this.#best = t;
        this.#bestSeq = T.seq[t]!;
      }
      this.#stab(this.left[t]!, id, q);
      t = this.right[t]!;
    }
  }
}
