// Stand-ins for time, sockets and the page, so the client's behaviour is
// checked step by step without waiting.

import type { Clock } from "../src/clock.js";
import type { PageLife, SocketLike } from "../src/client.js";

export class FakeClock implements Clock {
  private time: number;
  private timers: { due: number; callback: () => void; id: number }[] = [];
  private next = 1;

  constructor(start = 1_800_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.push({ due: this.time + ms, callback, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  }

  /** The delays of the timers pending, from now. */
  pending(): number[] {
    return this.timers.map((timer) => timer.due - this.time).sort((a, b) => a - b);
  }

  /** Moves time on by `ms`, running what falls due, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      this.timers.sort((a, b) => a.due - b.due);
      const timer = this.timers[0];
      if (!timer || timer.due > end) break;
      this.timers.shift();
      this.time = timer.due;
      timer.callback();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

export class FakeSocket implements SocketLike {
  readyState = 0;
  protocol = "";
  sent: string[] = [];
  closedWith: [number | undefined, string | undefined] | null = null;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}

  send(data: string): void {
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
  }

  /** The server sends `message`. */
  receive(message: object): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  /** The server (or the network) closes with `code`. */
  serverCloses(code: number, reason = ""): void {
    this.onclose?.({ code, reason });
  }
}

export class FakePage implements PageLife {
  isOnline = true;
  isHidden = false;
  private listeners = new Map<string, ((event: { persisted?: boolean }) => void)[]>();

  addEventListener(type: string, listener: (event: { persisted?: boolean }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  removeEventListener(type: string, listener: (event: { persisted?: boolean }) => void): void {
    this.listeners.set(type, (this.listeners.get(type) ?? []).filter((kept) => kept !== listener));
  }

  readonly online = () => this.isOnline;
  readonly hidden = () => this.isHidden;

  fire(type: string, event: { persisted?: boolean } = {}): void {
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
}
