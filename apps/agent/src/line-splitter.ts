// Splits a worker's stdout/stderr into lines while holding at most `maxBytes` of any one line:
// readline would buffer a line of any length (a worker printing 1 GB without a newline would
// take the agent's memory with it). Bytes past the cap are counted and shown as `[... N bytes cut]`.
import { cutLine } from './event-reporter';

const NEWLINE = 0x0a;

/** Length of the longest prefix of `b` that ends on a whole UTF-8 character. */
function wholeCharacters(b: Buffer): number {
  for (let i = b.length - 1; i >= Math.max(0, b.length - 4); i--) {
    const c = b[i];
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead byte
    const size = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    return i + size <= b.length ? b.length : i;
  }
  return b.length;
}

function decodeLine(bytes: Buffer, cut: number, maxBytes: number): string {
  if (cut === 0) {
    const text = bytes.toString('utf8');
    return text.endsWith('\r') ? text.slice(0, -1) : text;
  }
  const end = wholeCharacters(bytes);
  return cutLine(bytes.subarray(0, end).toString('utf8'), maxBytes, cut + bytes.length - end);
}

/** Calls `onLine` for every line of `stream` (without its newline), each at most `maxBytes` bytes with the marker; resolves at the stream's end. */
export function splitLines(stream: NodeJS.ReadableStream, maxBytes: number, onLine: (text: string) => void): Promise<void> {
  let parts: Buffer[] = [];
  let held = 0;
  let cut = 0;
  const take = (chunk: Buffer): void => {
    const room = maxBytes - held;
    if (chunk.length <= room) {
      parts.push(chunk);
      held += chunk.length;
    } else {
      if (room > 0) parts.push(chunk.subarray(0, room));
      held += Math.max(0, room);
      cut += chunk.length - Math.max(0, room);
    }
  };
  const emit = (): void => {
    onLine(decodeLine(Buffer.concat(parts), cut, maxBytes));
    parts = [];
    held = 0;
    cut = 0;
  };
  stream.on('data', (data: Buffer | string) => {
    let chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE)) {
      take(chunk.subarray(0, nl));
      emit();
      chunk = chunk.subarray(nl + 1);
    }
    if (chunk.length > 0) take(chunk);
  });
  return new Promise((resolve) => {
    stream.on('end', () => {
      if (held > 0 || cut > 0) emit();
      resolve();
    });
    stream.on('close', () => resolve());
    stream.on('error', () => resolve());
  });
}
