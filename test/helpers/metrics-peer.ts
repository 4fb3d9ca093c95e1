import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

/**
 * Runs `call` (JavaScript, with the package root as the working directory)
 * in a child process in which `require(peer)` fails as it does when the
 * package is not installed; resolves with the child's output: the code and
 * message of what `call` threw, or `no error`.
 */
export async function withoutPeer(peer: string, call: string): Promise<string> {
  const script = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request === ${JSON.stringify(peer)}) {
        const err = new Error("Cannot find module '" + request + "'");
        err.code = 'MODULE_NOT_FOUND';
        throw err;
      }
      return resolve.call(this, request, ...rest);
    };
    try { ${call}; console.log('no error'); }
    catch (err) { console.log(err.code + ' ' + err.message); }
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..', '..') });
  return stdout.trim();
}
