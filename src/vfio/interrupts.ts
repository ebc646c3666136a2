/**
 * Interrupts: one non-blocking eventfd per vector, watched by uv_poll on this
 * thread's event loop. Each delivery carries the eventfd counter, so
 * interrupts the kernel signalled while we were busy are counted, not lost.
 */
import { EventEmitter } from 'node:events';
import { VfioError } from '../errors.js';
import { native, type NativeEventFd } from '../native.js';

/** One delivery: `count` interrupts on `vector` (index start + i) since the last one. */
export interface InterruptEvent {
  /** The vector (sub-index) that fired, counted from 0 within the IRQ index, not from `start`. */
  vector: number;
  /**
   * How many times it fired since the previous delivery (the eventfd
   * counter), at least 1: interrupts that arrived while the loop was busy
   * are coalesced here, not lost.
   */
  count: number;
}

/** Options of {@link Interrupts.next} and {@link Interrupts.events}. */
export interface InterruptWaitOptions {
  /** Stops waiting: the promise rejects (or the iteration throws) with the signal's reason, an AbortError by default. */
  signal?: AbortSignal;
}

/**
 * The eventfds of one IRQ index (INTx, MSI, …) enabled on a device, from
 * {@link Device.enableInterrupts}. Each eventfd is non-blocking and watched
 * by `uv_poll` on the event loop of the thread that enabled it, so
 * interrupts never block the loop.
 *
 * Events: `'interrupt'` ({@link InterruptEvent}), `'error'` (a
 * {@link VfioError} with code ERR_VFIO_IRQ_POLL when polling an eventfd
 * fails), `'close'`. Async iteration yields the same deliveries, queued until
 * consumed.
 *
 * @example
 * ```ts
 * using irqs = device.enableInterrupts(VFIO_PCI_MSI_IRQ_INDEX);
 * irqs.on('interrupt', ({ vector, count }) => console.log(vector, count));
 * const first = await irqs.next({ signal: AbortSignal.timeout(1000) });
 * ```
 */
export class Interrupts extends EventEmitter {
  /** The IRQ index enabled (on PCI: 0 INTx, 1 MSI, 2 MSI-X). */
  readonly index: number;
  /** The first vector enabled; the eventfds serve vectors `start` to `start + fds.length − 1`. */
  readonly start: number;
  readonly #fds: NativeEventFd[];
  #refed = true;
  #closed = false;
  readonly #onClose: () => void;
  /** Total interrupts delivered per vector (the sum of the counts), indexed from `start`. */
  readonly totals: number[];

  /** @internal Use Device.enableInterrupts(). */
  constructor(index: number, start: number, fds: NativeEventFd[], onClose: () => void) {
    super();
    this.index = index;
    this.start = start;
    this.#fds = fds;
    this.#onClose = onClose;
    this.totals = fds.map(() => 0);
    fds.forEach((fd, i) =>
      fd.start((err, count) => {
        if (err !== null) {
          this.emit('error', new VfioError({ code: 'ERR_VFIO_IRQ_POLL', message: `interrupt poll failed: ${err}`, operation: 'uv_poll' }));
          return;
        }
        this.totals[i]! += count;
        this.emit('interrupt', { vector: start + i, count } satisfies InterruptEvent);
      }),
    );
  }

  /** The eventfd numbers, in vector order (what SET_IRQS was given). */
  get fds(): number[] {
    return this.#fds.map((f) => f.fd);
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Keeps the event loop alive while enabled (the default).
   *
   * @returns this
   */
  ref(): this {
    this.#refed = true;
    for (const f of this.#fds) f.ref();
    return this;
  }

  /**
   * Lets the process exit while interrupts are still enabled, as
   * `Timeout.unref()` does; deliveries still arrive while the loop runs.
   *
   * @returns this
   */
  unref(): this {
    this.#refed = false;
    for (const f of this.#fds) f.unref();
    return this;
  }

  /** Whether the eventfds keep the event loop alive (see `ref()` and `unref()`). */
  get refed(): boolean {
    return this.#refed;
  }

  /**
   * Signals a vector's eventfd from userspace, as if the device had raised it;
   * for tests and loopbacks. The kernel is not involved.
   *
   * @param vector - the vector; default `start`
   * @param count - added to the eventfd counter; default 1
   * @throws RangeError for a vector that is not enabled here
   * @throws {@link VfioError} ERR_VFIO_CLOSED after close
   */
  signal(vector = this.start, count = 1): void {
    if (this.#closed) throw VfioError.closed('interrupts');
    const fd = this.#fds[vector - this.start];
    if (!fd) throw new RangeError(`vector ${vector} is not in ${this.start}..${this.start + this.#fds.length - 1}`);
    fd.signal(count);
  }

  /**
   * Waits for the next delivery on any vector.
   *
   * @returns the delivery; rejects with the signal's reason (an AbortError by
   *   default) when `options.signal` aborts, and with ERR_VFIO_CLOSED when this
   *   object is closed meanwhile
   */
  next(options: InterruptWaitOptions = {}): Promise<InterruptEvent> {
    if (this.#closed) return Promise.reject(VfioError.closed('interrupts'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason ?? abortError());
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        this.off('interrupt', onIrq);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      const onIrq = (e: InterruptEvent): void => {
        cleanup();
        resolve(e);
      };
      const onClose = (): void => {
        cleanup();
        reject(VfioError.closed('interrupts'));
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal?.reason ?? abortError());
      };
      this.on('interrupt', onIrq);
      this.on('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Iterates deliveries until this object closes (the iteration then ends)
   * or `options.signal` aborts (it then throws the signal's reason).
   * Deliveries that arrive between iterations are queued, not dropped.
   */
  async *events(options: InterruptWaitOptions = {}): AsyncGenerator<InterruptEvent, void, undefined> {
    const { signal } = options;
    const queue: InterruptEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const onIrq = (e: InterruptEvent): void => {
      queue.push(e);
      wake?.();
    };
    const onEnd = (): void => {
      done = true;
      wake?.();
    };
    this.on('interrupt', onIrq);
    this.on('close', onEnd);
    signal?.addEventListener('abort', onEnd, { once: true });
    try {
      for (;;) {
        if (queue.length) {
          yield queue.shift()!;
          continue;
        }
        if (signal?.aborted) throw signal.reason ?? abortError();
        if (done || this.#closed) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      this.off('interrupt', onIrq);
      this.off('close', onEnd);
      signal?.removeEventListener('abort', onEnd);
    }
  }

  /** `for await (const e of irqs)`: the same as {@link Interrupts.events} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<InterruptEvent, void, undefined> {
    return this.events();
  }

  /**
   * Disables the IRQ index on the device and closes the eventfds, then emits
   * `'close'`: pending `next()` calls reject and iterations end. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#onClose();
    } finally {
      for (const f of this.#fds) f.close();
      this.emit('close');
    }
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function abortError(): Error {
  return new DOMException('The operation was aborted', 'AbortError');
}

/**
 * A bare eventfd (non-blocking, close-on-exec), e.g. to hand to
 * {@link Device.setIrqs} yourself. Its `fd` is the number to pass; `start()`
 * watches it on this thread's loop, `read()` takes the counter, `signal()`
 * adds to it, and `close()` closes it.
 */
export function createEventFd(): NativeEventFd {
  return native().eventfd();
}
