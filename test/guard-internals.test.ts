import { EventEmitter, once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { guardUndici, type UndiciModule } from '../src/integrations/undici/guard';

// An undici whose internals moved: the guard must say so, never stop
// checking in silence.

const kSize = Symbol('size');

class FakeClient extends EventEmitter {
  get [kSize](): number {
    return 0;
  }

  dispatch(): boolean {
    return true;
  }
}

function fakeUndici(Client: new (...args: never[]) => object): UndiciModule {
  return { Agent: FakeClient, Pool: FakeClient, Client } as unknown as UndiciModule;
}

describe('an undici whose Client the guard cannot read', () => {
  it('no size getter: ERR_SOCKSTATE_PEER_UNSUPPORTED when the guarded classes are built', () => {
    class NoSize extends EventEmitter {}
    let caught: unknown;
    try {
      guardUndici(fakeUndici(NoSize));
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({
      name: 'SockstateError',
      code: 'ERR_SOCKSTATE_PEER_UNSUPPORTED',
      message: 'sockstate/undici: the Client has no size getter: this undici version is not supported (>=6 <9)',
    });
  });

  it('no socket under Symbol(socket) at the first connection: one ERR_SOCKSTATE_PEER_UNSUPPORTED warning', async () => {
    const guarded = guardUndici(fakeUndici(FakeClient));
    const client = new guarded.Client('http://sockstate.invalid') as EventEmitter;
    const warning = once(process, 'warning') as Promise<[Error & { code?: string }]>;
    client.emit('connect', 'http://sockstate.invalid', [client]);
    const [err] = await warning;
    expect(err).toMatchObject({
      name: 'SockstateError',
      code: 'ERR_SOCKSTATE_PEER_UNSUPPORTED',
      message: 'sockstate/undici: the Client keeps no socket under Symbol(socket), so no connection is checked: this undici version is not supported (>=6 <9)',
    });
    // Once per undici copy, not per connection.
    const again: unknown[] = [];
    const onWarning = (w: unknown): void => {
      again.push(w);
    };
    process.on('warning', onWarning);
    client.emit('connect', 'http://sockstate.invalid', [client]);
    await new Promise(setImmediate);
    process.off('warning', onWarning);
    expect(again).toEqual([]);
  });
});
