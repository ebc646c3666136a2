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
  vector: number;
  count: number;
}

export interface InterruptWaitOptions {
  signal?: AbortSignal;
}

/**
 * The eventfds of one IRQ index (INTx, MSI, …) enabled on a device.
 * Events: `'interrupt'` ({ vector, count }), `'error'`.
 * Async iteration yields the same events, queued until consumed.
 */
export class Interrupts extends EventEmitter {
  readonly index: number;
  readonly start: number;
  readonly #fds: NativeEventFd[];
  #refed = true;
  #closed = false;
  readonly #onClose: () => void;
  /** Total interrupts delivered per vector (sum of counts). */
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

  get closed(): boolean {
    return this.#closed;
  }

  /** Keeps the event loop alive while enabled (the default). */
  ref(): this {
    this.#refed = true;
    for (const f of this.#fds) f.ref();
    return this;
  }

  /** Lets the process exit while interrupts are still enabled. */
  unref(): this {
    this.#refed = false;
    for (const f of this.#fds) f.unref();
    return this;
  }

  get refed(): boolean {
    return this.#refed;
  }

  /** Signals vector `i` from userspace (as if the device raised it); for tests and loopbacks. */
  signal(vector = this.start, count = 1): void {
    if (this.#closed) throw VfioError.closed('interrupts');
    const fd = this.#fds[vector - this.start];
    if (!fd) throw new RangeError(`vector ${vector} is not in ${this.start}..${this.start + this.#fds.length - 1}`);
    fd.signal(count);
  }

  /** The next delivery, or rejects with an AbortError when `signal` aborts (or ERR_VFIO_CLOSED on close). */
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

  /** Iterates deliveries until closed or aborted; nothing is dropped between iterations. */
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

  [Symbol.asyncIterator](): AsyncGenerator<InterruptEvent, void, undefined> {
    return this.events();
  }

  /** Disables the IRQ index on the device and closes the eventfds. Idempotent. */
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

  [Symbol.dispose](): void {
    this.close();
  }
}

function abortError(): Error {
  return new DOMException('The operation was aborted', 'AbortError');
}

/** A bare eventfd (non-blocking, close-on-exec), e.g. to hand to SET_IRQS yourself. */
export function createEventFd(): NativeEventFd {
  return native().eventfd();
}
