import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

/** A peer process running test/fixtures/peer.js, driven line by line. */
export interface PeerProcess {
  /** TCP port, or the AF_UNIX path it listens on. */
  readonly address: string;
  readonly child: ChildProcess;
  /** Sends a command and resolves on its "ok" line. */
  command(line: string): Promise<void>;
  /** Resolves when the peer has accepted our connection. */
  accepted(): Promise<void>;
  /** Resolves once the process has exited. */
  exited(): Promise<number | null>;
  kill(): void;
}

export async function startPeer(unixPath?: string): Promise<PeerProcess> {
  const script = path.join(__dirname, '..', 'fixtures', 'peer.js');
  const child = spawn(process.execPath, unixPath ? [script, unixPath] : [script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiters: { match: string; resolve: () => void }[] = [];
  let onFirst: ((line: string) => void) | null = null;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (onFirst) {
      const first = onFirst;
      onFirst = null;
      first(line);
      return;
    }
    const i = waiters.findIndex((w) => w.match === line);
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve();
    else lines.push(line);
  });
  const address = await new Promise<string>((resolve, reject) => {
    onFirst = resolve;
    void exit.then((code) => reject(new Error(`peer exited (${code}) before listening`)));
  });
  const waitLine = (match: string) =>
    new Promise<void>((resolve, reject) => {
      const i = lines.indexOf(match);
      if (i >= 0) {
        lines.splice(i, 1);
        resolve();
        return;
      }
      waiters.push({ match, resolve });
      void exit.then((code) => reject(new Error(`peer exited (${code}) before "${match}"`)));
    });
  return {
    address,
    child,
    command(line: string) {
      const done = waitLine(`ok ${line.split(' ')[0]}`);
      child.stdin!.write(`${line}\n`);
      return done;
    },
    accepted: () => waitLine('ok connection'),
    exited: () => exit,
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
