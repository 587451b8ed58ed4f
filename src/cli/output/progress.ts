// Renders PushEvents on stderr: live bars on a terminal, plain lines in CI logs.
import cliProgress from 'cli-progress';
import type { PushEvent } from '../push/types.ts';
import { formatBytes } from './summary.ts';

export interface ProgressRenderer {
  onEvent(ev: PushEvent): void;
  /** Removes live bars; call once the push is over, before printing results. */
  stop(): void;
}

type Stream = NodeJS.WritableStream & { isTTY?: boolean };

/** Width of a bar's label. */
const LABEL = 24;

export function createProgressRenderer(stream: Stream): ProgressRenderer {
  return stream.isTTY ? new BarRenderer(stream) : new LineRenderer(stream);
}

function planLine(ev: Extract<PushEvent, { type: 'plan' }>): string {
  return (
    `pushing ${ev.toPush} paths (${formatBytes(ev.narBytes)}) to ${ev.cache}; ` +
    `${ev.skippedPresent} already present, ${ev.skippedUpstream} upstream`
  );
}

function doneLine(ev: Extract<PushEvent, { type: 'done' }>): string {
  return `pushed ${ev.path} (${formatBytes(ev.narSize)} NAR, ${formatBytes(ev.bytesSent)} sent, ${ev.seconds.toFixed(1)} s)`;
}

function failedLine(ev: Extract<PushEvent, { type: 'failed' }>): string {
  return `failed ${ev.path}: ${ev.error}`;
}

/** One line per finished or failed path and no control characters, for logs. */
class LineRenderer implements ProgressRenderer {
  constructor(private readonly stream: Stream) {}

  onEvent(ev: PushEvent): void {
    if (ev.type === 'plan') this.#line(planLine(ev));
    else if (ev.type === 'done') this.#line(doneLine(ev));
    else if (ev.type === 'failed') this.#line(failedLine(ev));
  }

  stop(): void {}

  #line(text: string): void {
    // Reasons come from other tools; keep the log free of their control characters.
    this.stream.write(`${text.replace(/[\x00-\x1f\x7f]/g, ' ')}\n`);
  }
}

interface ActivePath {
  bar: cliProgress.SingleBar;
  started: number;
  read: number;
}

/** One bar per active path plus a total bar (bytes, rate, ETA, paths, dedup savings). */
class BarRenderer implements ProgressRenderer {
  readonly #multi: cliProgress.MultiBar;
  readonly #active = new Map<string, ActivePath>();
  #total: cliProgress.SingleBar | undefined;
  #started = performance.now();
  #read = 0;
  #sent = 0;
  #saved = 0;
  #paths = 0;
  #done = 0;

  constructor(stream: Stream) {
    this.#multi = new cliProgress.MultiBar(
      // Cursor and wrap modes stay untouched (a Ctrl-C would leave them changed); linewrap: true trims lines to the width instead.
      { stream, format: '{label} {bar} {info}', barsize: 20, hideCursor: false, linewrap: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
  }

  onEvent(ev: PushEvent): void {
    switch (ev.type) {
      case 'plan':
        this.#multi.log(`${planLine(ev)}\n`);
        this.#paths = ev.toPush;
        this.#started = performance.now();
        if (ev.toPush > 0) this.#total = this.#multi.create(Math.max(ev.narBytes, 1), 0, this.#totalPayload());
        break;
      case 'start': {
        const name = shorten(ev.path.slice(ev.path.lastIndexOf('/') + 1 + 33), LABEL);
        const bar = this.#multi.create(Math.max(ev.narSize, 1), 0, { label: name.padEnd(LABEL), info: '' });
        this.#active.set(ev.path, { bar, started: performance.now(), read: 0 });
        break;
      }
      case 'read': {
        const a = this.#active.get(ev.path);
        if (!a) break;
        a.read += ev.bytes;
        this.#read += ev.bytes;
        a.bar.update(a.read, { info: `${formatBytes(a.read)} ${rate(a.read, a.started)}` });
        this.#total?.update(this.#read, this.#totalPayload());
        break;
      }
      case 'sent':
        this.#sent += ev.bytes;
        break;
      case 'deduplicated':
        this.#saved += ev.bytes;
        break;
      case 'done':
      case 'failed': {
        const a = this.#active.get(ev.path);
        if (a) this.#multi.remove(a.bar);
        this.#active.delete(ev.path);
        this.#done++;
        this.#multi.log(`${ev.type === 'done' ? doneLine(ev) : failedLine(ev)}\n`);
        this.#total?.update(this.#read, this.#totalPayload());
        break;
      }
    }
  }

  stop(): void {
    // A render first: stop() alone would drop log lines still in the MultiBar's buffer.
    this.#multi.update();
    this.#multi.stop();
  }

  #totalPayload(): { label: string; info: string } {
    const elapsed = (performance.now() - this.#started) / 1000;
    const speed = elapsed > 0 ? this.#read / elapsed : 0;
    const left = (this.#total?.getTotal() ?? 0) - this.#read;
    const eta = speed > 0 && left > 0 ? `ETA ${Math.ceil(left / speed)} s` : '';
    return {
      label: `total ${this.#done}/${this.#paths} paths`.padEnd(LABEL),
      info: `${formatBytes(this.#read)} ${rate(this.#read, this.#started)} ${eta} sent ${formatBytes(this.#sent)} saved ${formatBytes(this.#saved)}`,
    };
  }
}

function rate(bytes: number, since: number): string {
  const s = (performance.now() - since) / 1000;
  return `${formatBytes(s > 0 ? Math.round(bytes / s) : 0)}/s`;
}

function shorten(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
