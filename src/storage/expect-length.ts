import { pipeline, type Readable, Transform } from 'node:stream';

/**
 * Passes body through, but makes the returned stream error if body ends after a different number of
 * bytes than expected: a connection cut mid-download must never look like a complete (truncated) blob.
 */
export function expectLength(body: Readable, expected: number, what: string): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      callback(seen === expected ? null : new Error(`${what}: body ended after ${seen} of ${expected} bytes`));
    },
  });
  // pipeline forwards a source error to counter and destroys the source if the consumer gives up early.
  pipeline(body, counter, () => {});
  return counter;
}
