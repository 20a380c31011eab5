/** The CLI's view of the terminal; tests pass their own to capture output. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True when stdout is a terminal (listr2 progress); false for cron, CI, pipes. */
  isTTY: boolean;
  /** NO_COLOR set, or not a terminal. */
  noColor: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export function processIO(): CliIO {
  const isTTY = Boolean(process.stdout.isTTY);
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    isTTY,
    noColor: !isTTY || Boolean(process.env.NO_COLOR),
    env: process.env,
    cwd: process.cwd(),
  };
}
