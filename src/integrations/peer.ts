/**
 * Loads an integration's optional peer dependency at first use, so that
 * `require('sockstate')` never loads one and a missing peer is a coded
 * error that says how to install it.
 *
 * @packageDocumentation
 */
import { codedError } from '../errors';

/**
 * `require(name)`, or `ERR_SOCKSTATE_PEER_MISSING` naming the package and
 * the command that installs it when it is not installed. Any other failure
 * while loading the package is rethrown as it is.
 *
 * @param name - The package, e.g. `'undici'`.
 * @param feature - What needs it, for the message, e.g. `'sockstate/undici'`.
 */
export function requirePeer<T>(name: string, feature: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${name}'`)) {
      throw codedError(
        'ERR_SOCKSTATE_PEER_MISSING',
        `${feature} needs the optional peer dependency '${name}', which is not installed: run npm install ${name}`,
      );
    }
    throw err;
  }
}
