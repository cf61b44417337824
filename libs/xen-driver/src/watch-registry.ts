// Xenstore watch listeners by token. Each watch gets its own token, so one xenstore connection
// serves every watch of the driver and an event reaches exactly the listener that asked for it.

export type WatchListener = (path: string) => void;

export class WatchRegistry {
  private readonly watches = new Map<string, { path: string; listener: WatchListener }>();
  private nextId = 1;

  /** Registers a listener for a watched path and returns the watch's new token. */
  add(path: string, listener: WatchListener): string {
    const token = `ferry-watch-${this.nextId++}`;
    this.watches.set(token, { path, listener });
    return token;
  }

  remove(token: string): void {
    this.watches.delete(token);
  }

  get size(): number {
    return this.watches.size;
  }

  /**
   * Hands an event to its listener; an event for a removed watch is dropped. When the connection
   * breaks (error), every listener is woken once with its watched path, so that its next xenstore
   * read reports the failure instead of it waiting for an event that will never come.
   */
  dispatch(path: string | null, token: string | null, error?: Error): void {
    if (error) {
      for (const { path: watched, listener } of [...this.watches.values()]) listener(watched);
      return;
    }
    if (path === null || token === null) return;
    this.watches.get(token)?.listener(path);
  }
}
