/**
 * ansible_connection: local — the same HostSession on this machine: commands are spawned
 * without a shell (argv as given), the Incus API is HTTP straight to its unix socket (the same
 * keep-alive client as over SSH), and become means `sudo -n` here too.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { TransportError } from '../errors.js';
import { readHostFile, writeHostFile } from './host-files.js';
import { firstSocketOpener, HttpStreams, StreamOpenError } from './http-client.js';
import { incusOverHttp, incusOverQuery } from './incus-api.js';
import { commandName } from './shell-quote.js';
import { daemonSockets, queryClient, type ConnectionSpec, type ExecOptions, type ExecResult, type HostSession, type TransportOptions } from './types.js';

export async function connectLocal(spec: ConnectionSpec, options: TransportOptions): Promise<HostSession> {
  const connectTo = (path: string) =>
    new Promise<Duplex>((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(socket);
      });
      socket.once('error', (e: NodeJS.ErrnoException) => reject(new StreamOpenError(`cannot open ${path}: ${e.code ?? e.message}`)));
    });
  const pool = new HttpStreams(firstSocketOpener(daemonSockets(spec), connectTo), 4);
  let closed = false;

  const exec = (argv: string[], step: string, execOptions: ExecOptions = {}): Promise<ExecResult> => {
    const words = execOptions.privileged && spec.become ? ['sudo', '-n', '--', ...argv] : argv;
    const timeoutMs = execOptions.timeoutMs ?? options.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      if (closed) return reject(new TransportError(spec.host, step, 'session closed'));
      const child = spawn(words[0]!, words.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => errs.push(d));
      child.stdin.on('error', () => {}); // a command that does not read its input
      child.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new TransportError(spec.host, step, `cannot run ${words[0]}: ${e.code ?? e.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (timedOut) return reject(new TransportError(spec.host, step, `${commandName(argv)} did not finish within ${timeoutMs} ms`));
        const stderr = Buffer.concat(errs).toString('utf8');
        resolve({ exitCode: code ?? 128, stdout: Buffer.concat(out), stderr: signal ? `${stderr}killed by ${signal}` : stderr });
      });
      child.stdin.end(execOptions.stdin ?? '');
    });
  };

  return {
    spec,
    exec,
    incus: spec.become
      ? incusOverQuery(spec.host, queryClient(spec).socket, (argv, step) => exec(argv, step, { privileged: true }), queryClient(spec).client)
      : incusOverHttp(spec.host, pool, options.commandTimeoutMs),
    events: (type, onEvent, onEnd) => pool.events(`/1.0/events?type=${encodeURIComponent(type)}`, onEvent, onEnd, options.commandTimeoutMs),
    readFile: (path, step, privileged = false) => readHostFile(spec.host, exec, path, step, privileged),
    writeFile: (path, content, step, writeOptions) => writeHostFile(spec.host, exec, path, content, step, { ...writeOptions, privileged: true }),
    close: async () => {
      closed = true;
      pool.close();
    },
  };
}
