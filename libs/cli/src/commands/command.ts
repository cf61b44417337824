export interface Command {
  /** One or two words, e.g. "migrate" or "lab up". */
  name: string;
  usage: string;
  summary: string;
  help?: string;
  run(argv: string[]): Promise<number>;
}
