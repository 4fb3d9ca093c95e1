import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Holds every libuv thread-pool thread in a blocking read of a FIFO, so
 * that work queued after it (an asynchronous sweep) waits until
 * {@link release}: a test can then close and reuse an fd between the moment
 * a sweep read it on the main thread and the moment the worker probes it.
 */
export function blockThreadPool(): { release(): Promise<void> } {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-pool-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // O_RDWR: opening a FIFO so does not wait for a writer; reads block.
  const fd = fs.openSync(fifo, 'r+');
  const reads: Promise<void>[] = [];
  for (let i = 0; i < threads; i++) {
    reads.push(
      new Promise((resolve, reject) => {
        fs.read(fd, Buffer.alloc(1), 0, 1, null, (err) => (err ? reject(err) : resolve()));
      }),
    );
  }
  return {
    async release() {
      fs.writeSync(fd, Buffer.alloc(threads));
      await Promise.all(reads);
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
