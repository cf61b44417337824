// What the codecs throw for bytes that are not a valid stream, and for misuse by a writer.

/** The bytes read are not a valid Xen migration stream; `offset` is where in the stream. */
export class MalformedStream extends Error {
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`);
    this.name = 'MalformedStream';
  }
}

/** The stream ended in the middle of a header or record. */
export class TruncatedStream extends MalformedStream {
  constructor(what: string, offset: number) {
    super(`stream truncated in ${what}`, offset);
    this.name = 'TruncatedStream';
  }
}

/** A writer was asked for something the format cannot express (a pfn beyond 52 bits, pages after the end, ...). */
export class StreamWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamWriteError';
  }
}
