/** The CLI's view of the terminal; tests pass their own to capture output. */
import { lazyBuiltins } from '../builtins.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True when stdout is a terminal (listr2 progress); false for cron, CI, pipes. */
  isTTY: boolean;
  /** NO_COLOR set, or not a terminal. */
  noColor: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * Asks a question on the terminal and returns the answer line; absent when stdin or stdout is
   * not a terminal (cron, CI, pipes): then nothing is ever asked.
   */
  ask?(question: string): Promise<string>;
  /**
   * Aborted when whoever reads the output went away (a closed pipe: `reconcile … | head`). A run
   * then stops as on SIGTERM: no new action, the ones in flight finish, the report files are written.
   */
  outputClosed?: AbortSignal;
}

export function processIO(): CliIO {
  const isTTY = Boolean(process.stdout.isTTY);
  const interactive = isTTY && Boolean(process.stdin.isTTY);
  // A closed pipe is not a crash: writes stop, and the run is told (outputClosed).
  const closed = new AbortController();
  const onError = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    if (!closed.signal.aborted) closed.abort('EPIPE');
  };
  process.stdout.on('error', onError);
  process.stderr.on('error', onError);
  const write = (stream: NodeJS.WriteStream) => (t: string) => void (closed.signal.aborted ? undefined : stream.write(t));
  return {
    ...(interactive ? { ask } : {}),
    outputClosed: closed.signal,
    stdout: write(process.stdout),
    stderr: write(process.stderr),
    isTTY,
    noColor: !isTTY || Boolean(process.env.NO_COLOR),
    env: process.env,
    cwd: process.cwd(),
  };
}

async function ask(question: string): Promise<string> {
  const { createInterface } = lazyBuiltins.readline();
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // Ctrl-C at the question is a "no", not a hang.
  const cancel = new AbortController();
  rl.on('SIGINT', () => cancel.abort());
  try {
    return await rl.question(question, { signal: cancel.signal });
  } catch {
    return '';
  } finally {
    rl.close();
  }
}
